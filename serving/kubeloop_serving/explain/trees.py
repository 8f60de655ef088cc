"""An ``ai.onnx.ml`` TreeEnsembleClassifier/Regressor node as arrays, with each leaf's root-to-leaf path.

Read the way onnxruntime evaluates it, so attributions add up to what the served model computes:
every leaf's weights are summed per output column (``class_ids`` / ``target_ids``) onto
``base_values``, then ``post_transform`` maps that raw score to the output. Binary classifiers exported
with one score column (skl2onnx: gradient boosting and random forests alike) get their second
column the way onnxruntime makes it: ``1 - s`` (NONE with non-negative weights) else ``-s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from kubeloop_serving.explain.errors import ExplainerUnavailableError

ML_DOMAIN = "ai.onnx.ml"
TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
#: Nodes that may surround the ensemble without changing what its input or output means.
PASS_THROUGH_OPS = ("Identity", "Cast")
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
LEAF = "LEAF"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class LeafPaths:
    """Each leaf's path condition, grouped by feature into ``depth`` slots per leaf.

    Condition ``c`` says: node ``cond_node[c]`` must send the row to its true branch when
    ``cond_true[c]``, else to its false branch; it belongs to slot ``cond_slot[c]`` (flat index
    ``leaf * depth + j``), the slot of that node's feature on that leaf's path. ``slot_feature`` is
    ``[leaves, depth]`` with -1 for unused slots.
    """

    cond_node: IntArray
    cond_true: BoolArray
    cond_slot: IntArray
    slot_feature: IntArray

    @property
    def depth(self) -> int:
        return int(self.slot_feature.shape[1])


@dataclass(frozen=True)
class TreeEnsemble:
    """Split nodes of every tree (global indices) plus the leaves' paths and weights."""

    feature: IntArray
    threshold: npt.NDArray[np.float32]
    mode: IntArray  # index into MODES
    missing_true: BoolArray
    leaf_values: FloatArray  # [leaves, outputs], raw score space
    base_values: FloatArray  # [outputs]
    paths: LeafPaths
    post_transform: str
    n_features: int
    output_labels: tuple[str, ...]

    def decisions(self, x: npt.NDArray[Any]) -> BoolArray:
        """[rows, split nodes]: whether each row goes to each node's true branch (onnxruntime's rules)."""
        values = np.asarray(x, dtype=np.float32)[:, self.feature]
        threshold = self.threshold[None, :]
        go = np.zeros(values.shape, dtype=bool)
        for index, compare in enumerate(
            (np.less_equal, np.less, np.greater_equal, np.greater, np.equal, np.not_equal)
        ):
            columns = self.mode == index
            if columns.any():
                go[:, columns] = compare(values[:, columns], threshold[:, columns])
        missing = np.isnan(values) & self.missing_true[None, :]
        return go | missing

    def slot_failures(self, x: npt.NDArray[Any]) -> BoolArray:
        """[rows, leaves, depth]: whether each row leaves each leaf's path at that feature's slot."""
        failed = self.decisions(x)[:, self.paths.cond_node] != self.paths.cond_true[None, :]
        leaves, depth = self.paths.slot_feature.shape
        result = np.zeros((x.shape[0], leaves * depth), dtype=bool)
        rows, conds = np.nonzero(failed)
        result[rows, self.paths.cond_slot[conds]] = True
        return result.reshape(x.shape[0], leaves, depth)

    def raw_scores(self, x: npt.NDArray[Any]) -> FloatArray:
        """[rows, outputs]: the scores before ``post_transform`` (reference evaluation, for checks)."""
        reached = ~self.slot_failures(x).any(axis=2)
        return self.base_values[None, :] + reached.astype(np.float64) @ self.leaf_values


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value).tolist()
        values[attribute.name.removesuffix("_as_tensor")] = value
    return values


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def find_tree_node(model: onnx.ModelProto) -> onnx.NodeProto:
    """The one tree-ensemble node, when it reads a graph input directly (Cast/Identity aside)."""
    graph = model.graph
    trees = [n for n in graph.node if n.domain == ML_DOMAIN and n.op_type in TREE_OPS]
    others = [n for n in graph.node if n.op_type not in (*TREE_OPS, *PASS_THROUGH_OPS)]
    if len(trees) != 1 or others:
        raise ExplainerUnavailableError(
            "tree explanations need a model that is one TreeEnsembleClassifier/Regressor node "
            f"(found {len(trees)} ensembles and other nodes {sorted({n.op_type for n in others})})"
        )
    source = trees[0].input[0]
    producers = {output: n for n in graph.node for output in n.output}
    while source in producers and producers[source].op_type in PASS_THROUGH_OPS:
        source = producers[source].input[0]
    if source not in {i.name for i in graph.input}:
        raise ExplainerUnavailableError("the tree ensemble does not read the model's input directly")
    found: onnx.NodeProto = trees[0]
    return found


def parse_tree_ensemble(model: onnx.ModelProto, n_features: int) -> TreeEnsemble:
    """The model's tree ensemble as arrays; ExplainerUnavailableError when it is not additive."""
    node = find_tree_node(model)
    attrs = _attributes(node)
    classifier = node.op_type == "TreeEnsembleClassifier"
    aggregate = _text(attrs.get("aggregate_function", "SUM"))
    if aggregate not in ("SUM", "AVERAGE"):
        raise ExplainerUnavailableError(f"aggregate_function {aggregate} is not additive")
    labels = [_text(v) for v in attrs.get("classlabels_int64s", attrs.get("classlabels_strings", []))]
    columns = len(labels) if classifier else int(attrs.get("n_targets", 1))
    prefix = "class" if classifier else "target"
    ids = np.asarray(attrs[f"{prefix}_ids"], dtype=np.int64)
    binary = classifier and columns == 2 and bool(np.all(ids == ids[0]))
    scored = 1 if binary else columns
    keys = list(zip(attrs["nodes_treeids"], attrs["nodes_nodeids"], strict=True))
    modes = [_text(m) for m in attrs["nodes_modes"]]
    features = np.asarray(attrs["nodes_featureids"], dtype=np.int64)
    if features.size and int(features.max()) >= n_features:
        raise ExplainerUnavailableError(f"the ensemble reads feature {features.max()} of {n_features}")
    leaves, conditions = _walk(keys, modes, attrs["nodes_truenodeids"], attrs["nodes_falsenodeids"])
    leaf_values = _leaf_values(attrs, prefix, keys, leaves, scored, binary)
    if aggregate == "AVERAGE":
        leaf_values /= len(set(attrs["nodes_treeids"]))
    base = np.asarray(attrs.get("base_values") or [0.0] * scored, dtype=np.float64)
    if base.size != scored:
        raise ExplainerUnavailableError(f"{base.size} base_values for {scored} scores")
    post_transform = _text(attrs.get("post_transform", "NONE"))
    if binary:
        all_positive = bool(np.all(np.asarray(attrs[f"{prefix}_weights"]) >= 0))
        complement = 1.0 if post_transform == "NONE" and all_positive else 0.0
        leaf_values = np.concatenate([-leaf_values, leaf_values], axis=1)
        base = np.concatenate([complement - base, base])
    return TreeEnsemble(
        feature=features,
        threshold=np.asarray(attrs["nodes_values"], dtype=np.float32),
        mode=np.asarray([MODES.index(m) if m in MODES else -1 for m in modes], dtype=np.int64),
        missing_true=np.asarray(attrs.get("nodes_missing_value_tracks_true") or [0] * len(keys), dtype=bool),
        leaf_values=leaf_values,
        base_values=base,
        paths=_slots(conditions, features),
        post_transform=post_transform,
        n_features=n_features,
        output_labels=tuple(labels) if classifier else tuple(str(t) for t in range(columns)),
    )


def _leaf_values(
    attrs: dict[str, Any],
    prefix: str,
    keys: list[tuple[int, int]],
    leaves: list[int],
    scored: int,
    binary: bool,
) -> FloatArray:
    """[leaves, scores]: each leaf's weights summed per score column (one column when binary)."""
    index = {key: i for i, key in enumerate(keys)}
    row_of = {leaf: row for row, leaf in enumerate(leaves)}
    values = np.zeros((len(leaves), scored))
    for tree, node_id, column, weight in zip(
        attrs[f"{prefix}_treeids"],
        attrs[f"{prefix}_nodeids"],
        attrs[f"{prefix}_ids"],
        attrs[f"{prefix}_weights"],
        strict=True,
    ):
        values[row_of[index[(tree, node_id)]], 0 if binary else column] += weight
    return values


def _walk(
    keys: list[tuple[int, int]], modes: list[str], true_ids: list[int], false_ids: list[int]
) -> tuple[list[int], list[list[tuple[int, bool]]]]:
    """Leaves (global node index) and, for each, its path as (split node, goes true) from the root."""
    index = {key: i for i, key in enumerate(keys)}
    children: set[int] = set()
    for i, (tree, _) in enumerate(keys):
        if modes[i] != LEAF:
            children.update((index[(tree, true_ids[i])], index[(tree, false_ids[i])]))
    leaves: list[int] = []
    paths: list[list[tuple[int, bool]]] = []
    stack = [(i, list[tuple[int, bool]]()) for i in range(len(keys)) if i not in children][::-1]
    while stack:
        i, path = stack.pop()
        if modes[i] == LEAF:
            leaves.append(i)
            paths.append(path)
            continue
        if modes[i] not in MODES:
            raise ExplainerUnavailableError(f"unknown node mode {modes[i]}")
        tree = keys[i][0]
        stack.append((index[(tree, false_ids[i])], [*path, (i, False)]))
        stack.append((index[(tree, true_ids[i])], [*path, (i, True)]))
    return leaves, paths


def _slots(conditions: list[list[tuple[int, bool]]], features: IntArray) -> LeafPaths:
    grouped = [sorted({int(features[n]) for n, _ in path}) for path in conditions]
    depth = max((len(g) for g in grouped), default=0) or 1
    slot_feature = np.full((len(conditions), depth), -1, dtype=np.int64)
    nodes: list[int] = []
    goes: list[bool] = []
    slots: list[int] = []
    for leaf, (path, leaf_features) in enumerate(zip(conditions, grouped, strict=True)):
        slot_feature[leaf, : len(leaf_features)] = leaf_features
        position = {feature: j for j, feature in enumerate(leaf_features)}
        for n, goes_true in path:
            nodes.append(n)
            goes.append(goes_true)
            slots.append(leaf * depth + position[int(features[n])])
    return LeafPaths(
        cond_node=np.asarray(nodes, dtype=np.int64),
        cond_true=np.asarray(goes, dtype=bool),
        cond_slot=np.asarray(slots, dtype=np.int64),
        slot_feature=slot_feature,
    )
