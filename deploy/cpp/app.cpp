// Shared by classify.cpp and detect.cpp (see app.hpp).
#include "app.hpp"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>

namespace edgetl {

void fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  std::exit(2);
}

int parse_int(const std::string& option, const std::string& text) {
  size_t used = 0;
  try {
    const int v = std::stoi(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  fail(option + " " + text + ": give a whole number");
}

double parse_double(const std::string& option, const std::string& text) {
  size_t used = 0;
  try {
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  fail(option + " " + text + ": give a number");
}

nlohmann::json read_manifest(const std::shared_ptr<ov::Model>& model, const std::string& path) {
  if (!model->has_rt_info("framework", "edgetl.manifest"))
    fail(path + " carries no edgetl manifest; write it with `edgetl export` or `edgetl quantize`");
  return nlohmann::json::parse(model->get_rt_info<std::string>("framework", "edgetl.manifest"));
}

void require_task(const nlohmann::json& manifest, const std::string& want, const std::string& path) {
  const std::string task = manifest.value("task", std::string("classify"));
  if (task == want) return;
  const std::string app = task == "detect" ? "edgetl_detect" : task == "classify" ? "edgetl_classify" : "";
  fail(path + " is a '" + task + "' model, this app runs '" + want + "' models" +
       (app.empty() ? std::string() : "; run it with " + app));
}

Contract contract_from(const nlohmann::json& m) {
  const auto& p = m.at("preprocessing");
  Contract c;
  c.height = p.at("input_size")[0];
  c.width = p.at("input_size")[1];
  c.resize = p.at("resize");
  c.interpolation = p.at("interpolation");
  c.crop = p.at("crop");
  if (p.contains("fit")) c.fit = p.at("fit");  // version-1 manifests: shorter-side
  if (c.fit != "shorter-side" && c.fit != "stretch" && c.fit != "letterbox")
    fail("preprocessing.fit " + c.fit + " is not known to this runtime (shorter-side, stretch, letterbox)");
  if (p.contains("pad_value")) c.pad_value = p.at("pad_value");
  for (int i = 0; i < 3; ++i) {
    c.mean[i] = p.at("mean")[i].get<float>();
    c.std[i] = p.at("std")[i].get<float>();
  }
  c.pixel_scale = p.at("pixel_scale").get<float>();
  c.channel_order = p.at("channel_order");
  return c;
}

RgbImage load_rgb(const std::string& path) {
  int w = 0, h = 0, n = 0;
  unsigned char* data = stbi_load(path.c_str(), &w, &h, &n, 3);  // grey, palette, alpha -> RGB
  if (!data) fail(path + ": cannot read image (" + stbi_failure_reason() + ")");
  RgbImage img{w, h, std::vector<uint8_t>(data, data + static_cast<size_t>(w) * h * 3)};
  stbi_image_free(data);
  return img;
}

ov::CompiledModel compile(ov::Core& core, const std::shared_ptr<ov::Model>& model, const Contract& contract,
                          const std::string& device, int threads) {
  const ov::Shape shape{1, 3, static_cast<size_t>(contract.height), static_cast<size_t>(contract.width)};
  model->reshape({{model->input().get_any_name(), ov::PartialShape(shape)}});
  ov::AnyMap config{ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
  if (device == "CPU") {
    // OpenVINO's CPU plugin would run FP32 layers in bf16 on AMX/AVX512-BF16 hosts
    config.emplace(ov::hint::inference_precision(ov::element::f32));
    if (threads > 0) config.emplace(ov::inference_num_threads(threads));
  }
  return core.compile_model(model, device, config);
}

void write_floats(const std::string& path, const std::vector<float>& values) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
  if (!out) fail(path + ": cannot write");
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail(path + ": cannot read");
  const std::streamsize bytes = in.tellg();
  if (bytes % static_cast<std::streamsize>(sizeof(float)) != 0)
    fail(path + ": " + std::to_string(bytes) + " bytes is not a whole number of float32 values");
  std::vector<float> values(static_cast<size_t>(bytes) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(values.data()), bytes);
  if (!in) fail(path + ": cannot read");
  return values;
}

}  // namespace edgetl
