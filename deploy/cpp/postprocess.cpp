// See postprocess.hpp. Each step names the numpy expression it reproduces.
#include "postprocess.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace edgetl {
namespace {

// np.maximum / np.minimum: NaN in, NaN out (std::max/min would drop it depending on order)
float np_max(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<float>::quiet_NaN();
  return a > b ? a : b;
}
float np_min(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<float>::quiet_NaN();
  return a < b ? a : b;
}

// np.argsort(-scores, kind="stable"): descending, ties in index order
std::vector<size_t> descending(const std::vector<float>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return -scores[a] < -scores[b]; });
  return order;
}

}  // namespace

std::vector<size_t> batched_nms(const std::vector<Box>& boxes, const std::vector<float>& scores,
                                const std::vector<int64_t>& classes, double iou_thr) {
  const std::vector<size_t> order = descending(scores);
  const size_t n = order.size();
  std::vector<float> area(n);
  for (size_t k = 0; k < n; ++k) {
    const Box& b = boxes[order[k]];
    area[k] = (b[2] - b[0]) * (b[3] - b[1]);
  }
  const float thr = static_cast<float>(iou_thr);  // np.float32(iou_thr)
  std::vector<char> alive(n, 1);
  std::vector<size_t> keep;
  for (size_t i = 0; i < n; ++i) {
    if (!alive[i]) continue;
    keep.push_back(order[i]);
    const Box& bi = boxes[order[i]];
    const int64_t ci = classes[order[i]];
    for (size_t r = i + 1; r < n; ++r) {
      if (!alive[r] || classes[order[r]] != ci) continue;
      const Box& br = boxes[order[r]];
      const float w = np_max(0.0f, np_min(bi[2], br[2]) - np_max(bi[0], br[0]));
      const float h = np_max(0.0f, np_min(bi[3], br[3]) - np_max(bi[1], br[1]));
      const float inter = w * h;
      const float iou = inter / (area[i] + area[r] - inter);
      if (iou > thr) alive[r] = 0;
    }
  }
  return keep;
}

std::vector<Detection> decode_image(const float* boxes, const float* scores, size_t anchors, size_t classes,
                                    const DecodeOptions& options) {
  // np.nonzero(scores > score_thr): row-major, so by location, then class; numpy compares a
  // float32 array with a Python float in float32
  const float score_thr = static_cast<float>(options.score_thr);
  std::vector<size_t> anchor_of;
  std::vector<int64_t> class_of;
  std::vector<float> cand;
  for (size_t a = 0; a < anchors; ++a)
    for (size_t c = 0; c < classes; ++c)
      if (scores[a * classes + c] > score_thr) {
        anchor_of.push_back(a);
        class_of.push_back(static_cast<int64_t>(c));
        cand.push_back(scores[a * classes + c]);
      }
  std::vector<size_t> top = descending(cand);
  if (top.size() > static_cast<size_t>(std::max(options.pre_nms_topk, 0)))
    top.resize(static_cast<size_t>(std::max(options.pre_nms_topk, 0)));
  std::vector<Box> top_boxes;
  std::vector<float> top_scores;
  std::vector<int64_t> top_classes;
  for (size_t t : top) {
    const float* b = boxes + anchor_of[t] * 4;
    top_boxes.push_back({b[0], b[1], b[2], b[3]});
    top_scores.push_back(cand[t]);
    top_classes.push_back(class_of[t]);
  }
  std::vector<size_t> keep = batched_nms(top_boxes, top_scores, top_classes, options.iou_thr);
  if (keep.size() > static_cast<size_t>(std::max(options.max_det, 0)))
    keep.resize(static_cast<size_t>(std::max(options.max_det, 0)));
  std::vector<Detection> out;
  out.reserve(keep.size());
  for (size_t k : keep) out.push_back({top_boxes[k], top_scores[k], top_classes[k]});
  return out;
}

Box to_original(const Box& box, const Geometry& g, int width, int height) {
  // boxes._affine: input = original * scale + offset, in float64; then clip, then float32
  const double sx = static_cast<double>(g.resized_w) / width, sy = static_cast<double>(g.resized_h) / height;
  const double scale[4] = {sx, sy, sx, sy};
  const double offset[4] = {static_cast<double>(g.offset_x), static_cast<double>(g.offset_y),
                            static_cast<double>(g.offset_x), static_cast<double>(g.offset_y)};
  const double limit[4] = {static_cast<double>(width), static_cast<double>(height), static_cast<double>(width),
                           static_cast<double>(height)};
  Box out;
  for (int k = 0; k < 4; ++k) {
    const double v = (static_cast<double>(box[k]) - offset[k]) / scale[k];
    // np.clip(v, 0, limit) = minimum(maximum(v, 0), limit), NaN kept
    out[k] = static_cast<float>(std::isnan(v) ? v : std::min(std::max(v, 0.0), limit[k]));
  }
  return out;
}

}  // namespace edgetl
