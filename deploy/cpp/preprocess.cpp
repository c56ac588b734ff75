// Pillow-compatible resampling (see preprocess.hpp). Constants and rounding follow Pillow's
// src/libImaging/Resample.c and Geometry.c; a change there would show up in the parity test
// (tests/test_deploy_cpp.py), which compares these pixels with Pillow's.
#include "preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace edgetl {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear_filter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // per output pixel: first input index, count
  std::vector<int> kk;      // fixed-point weights, ksize per output pixel
};

// precompute_coeffs + normalize_coeffs_8bpc
Coeffs precompute(int in_size, int out_size, double (*filter)(double), double filter_support) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = filter_support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(out_size * 2);
  std::vector<double> k(static_cast<size_t>(out_size) * c.ksize, 0.0);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    double* kx = &k[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double w = filter((x + xmin - center + 0.5) * ss);
      kx[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) kx[x] /= ww;
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  c.kk.resize(k.size());
  for (size_t i = 0; i < k.size(); ++i)
    c.kk[i] = static_cast<int>(k[i] < 0 ? -0.5 + k[i] * (1 << kPrecisionBits)
                                        : 0.5 + k[i] * (1 << kPrecisionBits));
  return c;
}

uint8_t clip8(int v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

RgbImage horizontal(const RgbImage& in, int out_w, const Coeffs& c) {
  RgbImage out{out_w, in.height, std::vector<uint8_t>(static_cast<size_t>(out_w) * in.height * 3)};
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* row = &in.pixels[static_cast<size_t>(y) * in.width * 3];
    for (int xx = 0; xx < out_w; ++xx) {
      const int xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1];
      const int* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
      int ss[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
      for (int x = 0; x < xmax; ++x)
        for (int ch = 0; ch < 3; ++ch) ss[ch] += row[(x + xmin) * 3 + ch] * k[x];
      for (int ch = 0; ch < 3; ++ch) out.pixels[(static_cast<size_t>(y) * out_w + xx) * 3 + ch] = clip8(ss[ch]);
    }
  }
  return out;
}

RgbImage vertical(const RgbImage& in, int out_h, const Coeffs& c) {
  RgbImage out{in.width, out_h, std::vector<uint8_t>(static_cast<size_t>(in.width) * out_h * 3)};
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = c.bounds[yy * 2], ymax = c.bounds[yy * 2 + 1];
    const int* k = &c.kk[static_cast<size_t>(yy) * c.ksize];
    for (int x = 0; x < in.width; ++x) {
      int ss[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
      for (int y = 0; y < ymax; ++y)
        for (int ch = 0; ch < 3; ++ch)
          ss[ch] += in.pixels[(static_cast<size_t>(y + ymin) * in.width + x) * 3 + ch] * k[y];
      for (int ch = 0; ch < 3; ++ch) out.pixels[(static_cast<size_t>(yy) * in.width + x) * 3 + ch] = clip8(ss[ch]);
    }
  }
  return out;
}

// Pillow resizes with NEAREST through an affine transform (ImagingScaleAffine): source
// coordinates accumulate in double steps from the pixel centre, then truncate.
RgbImage nearest(const RgbImage& in, int out_w, int out_h) {
  const double ax = static_cast<double>(in.width) / out_w, ay = static_cast<double>(in.height) / out_h;
  std::vector<int> xs(out_w);
  double xo = ax * 0.5;
  for (int x = 0; x < out_w; ++x, xo += ax) xs[x] = std::min(static_cast<int>(xo), in.width - 1);
  RgbImage out{out_w, out_h, std::vector<uint8_t>(static_cast<size_t>(out_w) * out_h * 3)};
  double yo = ay * 0.5;
  for (int y = 0; y < out_h; ++y, yo += ay) {
    const int sy = std::min(static_cast<int>(yo), in.height - 1);
    for (int x = 0; x < out_w; ++x)
      for (int ch = 0; ch < 3; ++ch)
        out.pixels[(static_cast<size_t>(y) * out_w + x) * 3 + ch] =
            in.pixels[(static_cast<size_t>(sy) * in.width + xs[x]) * 3 + ch];
  }
  return out;
}

}  // namespace

RgbImage resize(const RgbImage& in, int out_w, int out_h, const std::string& interpolation) {
  if (out_w == in.width && out_h == in.height) return in;
  if (interpolation == "nearest") return nearest(in, out_w, out_h);
  double (*filter)(double) = nullptr;
  double support = 0;
  if (interpolation == "bilinear") {
    filter = bilinear_filter;
    support = 1.0;
  } else if (interpolation == "bicubic") {
    filter = bicubic_filter;
    support = 2.0;
  } else {
    throw std::runtime_error("unknown interpolation '" + interpolation + "' in the model's contract");
  }
  RgbImage img = in;
  if (out_w != in.width) img = horizontal(img, out_w, precompute(in.width, out_w, filter, support));
  if (out_h != in.height) img = vertical(img, out_h, precompute(in.height, out_h, filter, support));
  return img;
}

Geometry geometry(const Contract& c, int width, int height) {
  if (c.fit == "stretch" || (c.fit == "shorter-side" && c.crop == "none")) return {c.width, c.height, 0, 0};
  // Python's round(): half to even, which nearbyint does in the default rounding mode
  if (c.fit == "letterbox") {  // the whole image inside input_size, centred, padded
    const double scale = std::min(static_cast<double>(c.width) / width, static_cast<double>(c.height) / height);
    const int new_w = std::min(c.width, std::max(1, static_cast<int>(std::nearbyint(width * scale))));
    const int new_h = std::min(c.height, std::max(1, static_cast<int>(std::nearbyint(height * scale))));
    return {new_w, new_h, (c.width - new_w) / 2, (c.height - new_h) / 2};
  }
  const double scale = static_cast<double>(c.resize) / std::min(width, height);
  const int new_w = std::max(c.width, static_cast<int>(std::nearbyint(width * scale)));
  const int new_h = std::max(c.height, static_cast<int>(std::nearbyint(height * scale)));
  return {new_w, new_h, -((new_w - c.width) / 2), -((new_h - c.height) / 2)};
}

std::vector<uint8_t> to_uint8_chw(const RgbImage& src, const Contract& c) {
  const Geometry g = geometry(c, src.width, src.height);
  RgbImage img = resize(src, g.resized_w, g.resized_h, c.interpolation);
  int left = 0, top = 0;
  if (c.fit == "letterbox") {
    RgbImage canvas{c.width, c.height,
                    std::vector<uint8_t>(static_cast<size_t>(c.width) * c.height * 3,
                                         static_cast<uint8_t>(c.pad_value))};
    for (int y = 0; y < img.height; ++y)
      std::copy_n(img.pixels.begin() + static_cast<size_t>(y) * img.width * 3, static_cast<size_t>(img.width) * 3,
                  canvas.pixels.begin() + (static_cast<size_t>(y + g.offset_y) * c.width + g.offset_x) * 3);
    img = std::move(canvas);
  } else {  // a crop (negative offset) or nothing
    left = -g.offset_x;
    top = -g.offset_y;
  }
  const bool bgr = c.channel_order == "BGR";
  std::vector<uint8_t> chw(static_cast<size_t>(3) * c.height * c.width);
  for (int ch = 0; ch < 3; ++ch) {
    const int src_ch = bgr ? 2 - ch : ch;
    for (int y = 0; y < c.height; ++y)
      for (int x = 0; x < c.width; ++x)
        chw[(static_cast<size_t>(ch) * c.height + y) * c.width + x] =
            img.pixels[(static_cast<size_t>(y + top) * img.width + x + left) * 3 + src_ch];
  }
  return chw;
}

std::vector<float> normalize(const std::vector<uint8_t>& chw, const Contract& c) {
  std::vector<float> out(chw.size());
  const size_t plane = static_cast<size_t>(c.height) * c.width;
  for (int ch = 0; ch < 3; ++ch) {
    const float m = c.mean[ch] * c.pixel_scale, s = c.std[ch] * c.pixel_scale;
    for (size_t i = 0; i < plane; ++i) out[ch * plane + i] = (static_cast<float>(chw[ch * plane + i]) - m) / s;
  }
  return out;
}

}  // namespace edgetl
