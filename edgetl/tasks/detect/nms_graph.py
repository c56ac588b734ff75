"""In-graph NMS (``edgetl export --nms``): the exported ``boxes`` (N, A, 4) and ``scores``
(N, A, C) followed by standard ONNX ops, so the file gives fixed-size detections that ONNX
Runtime, OpenVINO and TensorRT 10 (ONNX ``NonMaxSuppression`` imports as its INMSLayer) run.

The same semantics as the host NMS (``postprocess.decode_image``):
1. the ``pre_nms_topk`` best (location, class) pairs by score (TopK breaks ties by the lower
   flat index, as the host's stable sort does);
2. per-class NMS over those candidates: each candidate scores only in its own class (a one-hot
   score tensor), so ``NonMaxSuppression``'s per-class selection is the host's ``batched_nms``;
   a score must exceed ``score_threshold``, a box is suppressed when IoU > ``iou_threshold``;
   ``max_output_boxes_per_class`` = ``max_detections`` (no class can place more in the top K);
3. the kept scores scattered back onto the candidates and the global top ``max_detections``
   taken with TopK (ties: candidate order, the host's order).

Outputs, padded to K = ``max_detections``: ``det_boxes`` (N, K, 4) xyxy in input pixels,
``det_scores`` (N, K), ``det_classes`` (N, K) int32, ``num_dets`` (N,) int32 (EfficientNMS's
layout). Rows past ``num_dets`` hold zeros, class -1.
"""

from __future__ import annotations

NMS_OPSET = 11  # NonMaxSuppression's first version


def fit_to_model(settings, anchors: int, classes: int):
    """``settings`` (a manifest NmsSpec) as a graph of ``anchors`` x ``classes`` candidates can
    hold them (TopK's K may not exceed its axis), and a note for each value that was lowered."""
    pairs = anchors * classes
    notes = []
    topk = min(settings.pre_nms_topk, pairs)
    if topk < settings.pre_nms_topk:
        notes.append(
            f"in-graph NMS: pre-NMS top-k {settings.pre_nms_topk} lowered to {topk}, the model's "
            f"{anchors} locations x {classes} classes"
        )
    k = min(settings.max_detections, topk)
    if k < settings.max_detections:
        notes.append(f"in-graph NMS: max detections {settings.max_detections} lowered to {k}, its candidates")
    return settings.model_copy(update={"pre_nms_topk": topk, "max_detections": k}), notes


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def append_nms(proto, settings):
    """``proto`` (outputs ``boxes``, ``scores``) followed by NMS with ``settings`` (a manifest
    NmsSpec): a new proto with the NMS outputs, the NmsSpec it holds (``fit_to_model``) and notes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    outs = {o.name: o for o in graph.output}
    if set(outs) != {"boxes", "scores"}:
        raise ValueError(f"in-graph NMS needs the outputs boxes and scores, not {sorted(outs)}")
    batch, anchors, classes = _dims(outs["scores"])
    if not isinstance(anchors, int) or not isinstance(classes, int) or not anchors or not classes:
        raise ValueError(f"in-graph NMS needs static anchors and classes, got scores {_dims(outs['scores'])}")
    settings, notes = fit_to_model(settings, anchors, classes)
    k_cand, k_out = settings.pre_nms_topk, settings.max_detections

    def const(name: str, value, dtype) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), f"nms/{name}"))
        return f"nms/{name}"

    nodes = []

    def node(op: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        i = len(nodes)
        outputs = [f"nms/{op.lower()}_{i}_{j}" for j in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outputs, name=f"nms/{op}_{i}", **attrs))
        return outputs

    # 1. pre-NMS top-k over every (location, class) pair, flat index = location * C + class
    flat = node("Reshape", ["scores", const("flat_shape", [0, -1], np.int64)])[0]
    cand_scores, cand_idx = node("TopK", [flat, const("k_cand", [k_cand], np.int64)], 2, axis=-1)
    num_classes = const("num_classes", classes, np.int64)
    anchor = node("Div", [cand_idx, num_classes])[0]
    cand_cls64 = node("Sub", [cand_idx, node("Mul", [anchor, num_classes])[0]])[0]
    cand_cls = node("Cast", [cand_cls64], to=TensorProto.INT32)[0]  # int32: what TensorRT indexes with
    box_shape = const("box_cols", [1, 1, 4], np.int64)
    axis2 = const("axis2", [2], np.int64)
    axis1 = const("axis1", [1], np.int64)
    anchor_idx = node("Expand", [node("Unsqueeze", [anchor, axis2])[0], box_shape])[0]
    cand_boxes = node("GatherElements", ["boxes", anchor_idx], axis=1)[0]  # (N, Kc, 4)
    # 2. per-class NMS: each candidate scores in its own class only
    class_ids = const("class_ids", np.arange(classes).reshape(1, classes, 1), np.int32)
    own = node("Equal", [node("Unsqueeze", [cand_cls, axis1])[0], class_ids])[0]  # (N, C, Kc)
    zero = const("zero", 0.0, np.float32)
    per_class = node("Where", [own, node("Unsqueeze", [cand_scores, axis1])[0], zero])[0]
    selected = node(
        "NonMaxSuppression",
        [
            cand_boxes,
            per_class,
            const("max_per_class", k_out, np.int64),
            const("iou", settings.iou_threshold, np.float32),
            const("score", settings.score_threshold, np.float32),
        ],
        center_point_box=0,
    )[0]  # (S, 3): batch, class, candidate
    where = node("Gather", [selected, const("batch_and_box", [0, 2], np.int64)], axis=1)[0]
    kept_scores = node("GatherND", [cand_scores, where])[0]
    blank = node(
        "ConstantOfShape",
        [node("Shape", [cand_scores])[0]],
        value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
    )[0]
    kept = node("ScatterND", [blank, where, kept_scores])[0]  # (N, Kc): 0 where suppressed
    # 3. global top K of the kept candidates, in score order; padding rows zeroed
    det_scores, pos = node("TopK", [kept, const("k_out", [k_out], np.int64)], 2, axis=-1)
    valid = node("Greater", [det_scores, zero])[0]
    pos_idx = node("Expand", [node("Unsqueeze", [pos, axis2])[0], box_shape])[0]
    boxes = node("GatherElements", [cand_boxes, pos_idx], axis=1)[0]
    valid_f = node("Unsqueeze", [node("Cast", [valid], to=TensorProto.FLOAT)[0], axis2])[0]
    classes_k = node("GatherElements", [cand_cls, pos], axis=1)[0]
    padded_cls = node("Where", [valid, classes_k, const("no_class", -1, np.int32)])[0]
    count = node("ReduceSum", [node("Cast", [valid], to=TensorProto.INT32)[0], axis1], keepdims=0)[0]
    finals = {
        "det_boxes": node("Mul", [boxes, valid_f])[0],
        "det_scores": node("Identity", [det_scores])[0],
        "det_classes": node("Identity", [padded_cls])[0],
        "num_dets": node("Identity", [count])[0],
    }
    for name, tensor in finals.items():  # the last node of each output writes its graph name
        producer = next(n for n in nodes if tensor in n.output)
        producer.output[list(producer.output).index(tensor)] = name
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("det_boxes", TensorProto.FLOAT, [batch, k_out, 4]),
            helper.make_tensor_value_info("det_scores", TensorProto.FLOAT, [batch, k_out]),
            helper.make_tensor_value_info("det_classes", TensorProto.INT32, [batch, k_out]),
            helper.make_tensor_value_info("num_dets", TensorProto.INT32, [batch]),
        ]
    )
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < NMS_OPSET:
            opset.version = NMS_OPSET
    return model, settings, notes
