// The edgetl preprocessing contract in C++, bit-exact with edgetl/data/preprocess.py.
//
// The contract (resize, crop, mean/std, channel order) travels inside the model file, so an
// app that embeds the model applies exactly what training applied. Resizing reproduces
// Pillow's fixed-point resampler (Resample.c: bilinear/bicubic with antialiasing) and its
// nearest-neighbour affine scaling, so uint8 pixels match Pillow's to the bit.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace edgetl {

struct Contract {
  int height = 0, width = 0;       // input_size (H, W) fed to the model
  int resize = 0;                  // shorter side is resized to this before the crop
  std::string interpolation;       // nearest | bilinear | bicubic
  std::string crop;                // center | none
  std::string fit = "shorter-side";  // shorter-side | stretch | letterbox (absent before schema 2)
  int pad_value = 114;             // letterbox padding, every channel
  std::array<float, 3> mean{}, std{};
  float pixel_scale = 255.0f;
  std::string channel_order;       // RGB | BGR
};

// Interleaved 8-bit RGB image, rows top to bottom.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3
};

// Pillow's Image.resize(..., resample) for an RGB image.
RgbImage resize(const RgbImage& in, int out_w, int out_h, const std::string& interpolation);

// The geometric half (resize, crop or letterbox pad) -> uint8 CHW, in the contract's channel order.
std::vector<uint8_t> to_uint8_chw(const RgbImage& img, const Contract& c);

// The arithmetic half: float32 CHW, (x - mean * scale) / (std * scale) in float32 like numpy.
std::vector<float> normalize(const std::vector<uint8_t>& chw, const Contract& c);

}  // namespace edgetl
