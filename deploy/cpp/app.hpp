// What both example apps do around the model: read the edgetl manifest from the model file,
// turn its preprocessing block into a Contract, decode an image, compile for batch 1.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <openvino/openvino.hpp>

#include "preprocess.hpp"

namespace edgetl {

// "error: MESSAGE" on stderr, exit status 2 (the edgetl CLI's status for bad input).
[[noreturn]] void fail(const std::string& message);

// A command-line number, or a failure naming the option and the text.
int parse_int(const std::string& option, const std::string& text);
double parse_double(const std::string& option, const std::string& text);

// The manifest edgetl writes into ONNX metadata_props; fails naming `path` when there is none.
nlohmann::json read_manifest(const std::shared_ptr<ov::Model>& model, const std::string& path);

// The manifest's task ("classify" before schema 2), failing unless it is `want`.
void require_task(const nlohmann::json& manifest, const std::string& want, const std::string& path);

Contract contract_from(const nlohmann::json& manifest);

// Any image stb_image decodes (grey, palette and alpha become RGB).
RgbImage load_rgb(const std::string& path);

// Reshaped to batch 1 at the contract's size; FP32 on CPU, `threads` > 0 caps the threads.
ov::CompiledModel compile(ov::Core& core, const std::shared_ptr<ov::Model>& model, const Contract& contract,
                          const std::string& device, int threads);

// float32 values, native byte order (numpy's tofile / fromfile).
void write_floats(const std::string& path, const std::vector<float>& values);
std::vector<float> read_floats(const std::string& path);

}  // namespace edgetl
