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

// Where an image of width x height lands in the input (edgetl.data.preprocess.geometry): it is
// resized to resized_w x resized_h and its top-left corner put at (offset_x, offset_y) of the
// input; a negative offset is a crop, a positive one letterbox padding.
struct Geometry {
  int resized_w = 0, resized_h = 0;
  int offset_x = 0, offset_y = 0;
};

Geometry geometry(const Contract& c, int width, int height);

// Pillow's Image.resize(..., resample) for an RGB image.
RgbImage resize(const RgbImage& in, int out_w, int out_h, const std::string& interpolation);

// The geometric half (resize, crop or letterbox pad) -> uint8 CHW, in the contract's channel order.
std::vector<uint8_t> to_uint8_chw(const RgbImage& img, const Contract& c);

// The arithmetic half: float32 CHW, (x - mean * scale) / (std * scale) in float32 like numpy.
std::vector<float> normalize(const std::vector<uint8_t>& chw, const Contract& c);

}  // namespace edgetl
