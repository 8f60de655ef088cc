"""OIP v2 over gRPC (inference.GRPCInferenceService) next to REST, on KUBELOOP_SERVING_GRPC_PORT.

``grpc_predict_v2_pb2*`` are generated from ``grpc_predict_v2.proto`` by ``make grpc-stubs``.
"""
