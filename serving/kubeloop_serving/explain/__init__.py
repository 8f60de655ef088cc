"""Explanations at serving time: exact TreeSHAP from the ONNX tree ensemble, permutation SHAP, LIME.

``trees`` parses the ensemble, ``treeshap`` explains it, ``agnostic`` wraps shap and lime around the
ONNX session, ``background`` reads the reference rows, ``explainers`` picks the method, ``service``
answers the endpoint.
"""
