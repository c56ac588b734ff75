// A detector's outputs -> detections, mirroring edgetl/tasks/detect/postprocess.py and
// boxes.py operation by operation (float32 thresholds and IoU, stable descending order), so
// the same outputs give the same detections, bit for bit, as Python's decode_image +
// to_original. Build this file without floating-point contraction (-ffp-contract=off in
// CMakeLists.txt): an FMA would round the IoU differently from numpy.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "preprocess.hpp"

namespace edgetl {

using Box = std::array<float, 4>;  // x1, y1, x2, y2

struct Detection {
  Box box;
  float score = 0;
  int64_t cls = 0;
};

// The defaults are edgetl's (SCORE_THRESHOLD, IOU_THRESHOLD, MAX_DETECTIONS in tasks/detect).
struct DecodeOptions {
  double score_thr = 0.05;  // a (location, class) pair scoring over this is a candidate
  double iou_thr = 0.6;     // a kept box suppresses same-class boxes overlapping more than this
  int max_det = 100;
  int pre_nms_topk = 1000;  // the best candidates that go through NMS
};

// Per-class greedy NMS (postprocess.batched_nms): indices kept, by decreasing score.
std::vector<size_t> batched_nms(const std::vector<Box>& boxes, const std::vector<float>& scores,
                                const std::vector<int64_t>& classes, double iou_thr);

// One image (postprocess.decode_image): boxes (A, 4) and scores (A, C), row-major, boxes in
// model-input pixels -> at most max_det detections, best first.
std::vector<Detection> decode_image(const float* boxes, const float* scores, size_t anchors, size_t classes,
                                    const DecodeOptions& options);

// Model-input box -> original-image box (boxes.to_original with clip=True): the inverse of the
// geometry the image was preprocessed with, clamped to the image.
Box to_original(const Box& box, const Geometry& g, int width, int height);

}  // namespace edgetl
