// edgetl_classify: embed an edgetl model in a C++ app with OpenVINO.
//
//   edgetl_classify MODEL.onnx IMAGE [--device CPU] [--threads N] [--top-k K] [--json]
//                   [--bench N] [--dump-input FILE]
//
// Labels, input shape and the preprocessing contract are read from the model file itself
// (the manifest edgetl writes into ONNX metadata_props), so the app applies exactly the
// preprocessing the model was trained and evaluated with.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "app.hpp"

namespace {

using edgetl::fail;

struct Args {
  std::string model, image, device = "CPU", dump_input;
  int threads = 0, top_k = 3, bench = 0;
  bool json = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--device") a.device = value();
    else if (arg == "--threads") a.threads = edgetl::parse_int(arg, value());
    else if (arg == "--top-k") a.top_k = edgetl::parse_int(arg, value());
    else if (arg == "--bench") a.bench = edgetl::parse_int(arg, value());
    else if (arg == "--dump-input") a.dump_input = value();
    else if (arg == "--json") a.json = true;
    else if (arg == "-h" || arg == "--help") {
      std::cout << "usage: edgetl_classify MODEL.onnx IMAGE [--device CPU] [--threads N] [--top-k K]\n"
                   "                       [--json] [--bench N] [--dump-input FILE]\n";
      std::exit(0);
    } else if (!arg.empty() && arg[0] == '-') fail("unknown option " + arg + " (see --help)");
    else positional.push_back(arg);
  }
  if (positional.size() != 2) fail("expected MODEL.onnx and IMAGE (see --help)");
  a.model = positional[0];
  a.image = positional[1];
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  try {
    ov::Core core;
    auto model = core.read_model(args.model);
    const nlohmann::json manifest = edgetl::read_manifest(model, args.model);
    edgetl::require_task(manifest, "classify", args.model);
    const edgetl::Contract contract = edgetl::contract_from(manifest);
    const auto labels = manifest.at("labels").get<std::vector<std::string>>();

    const std::vector<float> input =
        edgetl::normalize(edgetl::to_uint8_chw(edgetl::load_rgb(args.image), contract), contract);
    if (!args.dump_input.empty()) edgetl::write_floats(args.dump_input, input);

    ov::CompiledModel compiled = edgetl::compile(core, model, contract, args.device, args.threads);
    ov::InferRequest request = compiled.create_infer_request();
    request.set_input_tensor(
        ov::Tensor(ov::element::f32, compiled.input().get_shape(), const_cast<float*>(input.data())));
    request.infer();
    const ov::Tensor out = request.get_output_tensor(0);
    const float* logits = out.data<const float>();
    const size_t n = out.get_size();
    if (n != labels.size()) fail("the model has " + std::to_string(n) + " outputs but the manifest names " +
                                 std::to_string(labels.size()) + " labels");

    std::vector<float> logit_values(logits, logits + n);
    const float top = *std::max_element(logit_values.begin(), logit_values.end());
    std::vector<double> prob(n);
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += prob[i] = std::exp(static_cast<double>(logit_values[i] - top));
    for (auto& p : prob) p /= total;
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return prob[a] > prob[b]; });
    const size_t k = std::min<size_t>(std::max(args.top_k, 1), n);

    double p50_ms = -1;
    if (args.bench > 0) {  // compute-only latency of the compiled model, batch 1
      std::vector<double> ms;
      for (int i = 0; i < std::max(10, args.bench / 10); ++i) request.infer();  // warm-up
      for (int i = 0; i < args.bench; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        request.infer();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
      p50_ms = ms[ms.size() / 2];
    }

    if (args.json) {
      nlohmann::json result{{"logits", logit_values}, {"top", nlohmann::json::array()}};
      for (size_t i = 0; i < k; ++i) result["top"].push_back({{"label", labels[order[i]]}, {"prob", prob[order[i]]}});
      if (p50_ms >= 0) result["p50_ms"] = p50_ms;
      std::cout << result.dump() << "\n";
    } else {
      for (size_t i = 0; i < k; ++i) std::cout << labels[order[i]] << "\t" << prob[order[i]] << "\n";
      if (p50_ms >= 0) std::cout << "p50 " << p50_ms << " ms over " << args.bench << " runs\n";
    }
  } catch (const std::exception& e) {  // OpenVINO and JSON errors: one line, not an abort
    fail(e.what());
  }
  return 0;
}
