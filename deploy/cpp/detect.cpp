// edgetl_detect: an edgetl detector in a C++ app with OpenVINO, decode and NMS included.
//
//   edgetl_detect MODEL.onnx IMAGE [--device CPU] [--threads N] [--score-thr 0.05] [--iou-thr 0.6]
//                 [--max-det 100] [--pre-nms-topk 1000] [--json] [--dump-input FILE]
//                 [--outputs BOXES.f32 SCORES.f32]
//
// Labels, input size and the preprocessing contract (letterbox and its pad value) come from
// the manifest inside the model file; the thresholds are edgetl's defaults (the ones `edgetl
// eval` uses) unless given here. Every detection is printed in the original image's pixels.
// --outputs decodes given raw outputs (float32, boxes (A, 4) and scores (A, C) as numpy's
// tofile writes them) instead of running the model: the decode and NMS alone, for testing.
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "app.hpp"
#include "postprocess.hpp"

namespace {

using edgetl::fail;

struct Args {
  std::string model, image, device = "CPU", dump_input, boxes_file, scores_file;
  int threads = 0;
  edgetl::DecodeOptions decode;
  bool json = false;
};

constexpr const char* kUsage =
    "usage: edgetl_detect MODEL.onnx IMAGE [--device CPU] [--threads N] [--score-thr 0.05]\n"
    "                     [--iou-thr 0.6] [--max-det 100] [--pre-nms-topk 1000] [--json]\n"
    "                     [--dump-input FILE] [--outputs BOXES.f32 SCORES.f32]\n"
    "  --score-thr    candidates score over this (0 <= thr < 1)\n"
    "  --iou-thr      a kept box suppresses boxes of its class overlapping more than this\n"
    "  --max-det      detections kept per image, best first\n"
    "  --pre-nms-topk best candidates that go through NMS\n"
    "  --json         one JSON object: image size and detections (label, class, score, box)\n"
    "  --dump-input   write the preprocessed float32 input tensor to FILE\n"
    "  --outputs      decode these raw float32 outputs instead of running the model\n";

Args parse_args(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(arg + " needs a value");
      return argv[++i];
    };
    auto in_range = [&](double v, bool ok, const std::string& text, const char* want) {
      if (!ok) fail(arg + " " + text + ": give " + want);
      return v;
    };
    if (arg == "--device") a.device = value();
    else if (arg == "--threads") a.threads = edgetl::parse_int(arg, value());
    else if (arg == "--score-thr") {
      const std::string t = value();
      const double v = edgetl::parse_double(arg, t);
      a.decode.score_thr = in_range(v, v >= 0 && v < 1, t, "0 <= thr < 1");
    } else if (arg == "--iou-thr") {
      const std::string t = value();
      const double v = edgetl::parse_double(arg, t);
      a.decode.iou_thr = in_range(v, v > 0 && v <= 1, t, "0 < thr <= 1");
    } else if (arg == "--max-det" || arg == "--pre-nms-topk") {
      const std::string t = value();
      const int v = edgetl::parse_int(arg, t);
      in_range(v, v >= 1, t, "1 or more");
      (arg == "--max-det" ? a.decode.max_det : a.decode.pre_nms_topk) = v;
    }
    else if (arg == "--dump-input") a.dump_input = value();
    else if (arg == "--outputs") {
      a.boxes_file = value();
      a.scores_file = value();
    } else if (arg == "--json") a.json = true;
    else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (!arg.empty() && arg[0] == '-') fail("unknown option " + arg + " (see --help)");
    else positional.push_back(arg);
  }
  if (positional.size() != 2) fail("expected MODEL.onnx and IMAGE (see --help)");
  a.model = positional[0];
  a.image = positional[1];
  return a;
}

struct Outputs {
  std::vector<float> boxes, scores;  // (A, 4), (A, C)
  size_t anchors = 0;
};

// Raw outputs from files: A from the boxes file, C must be the manifest's label count.
Outputs read_outputs(const Args& args, size_t classes) {
  Outputs o{edgetl::read_floats(args.boxes_file), edgetl::read_floats(args.scores_file)};
  if (o.boxes.size() % 4 != 0) fail(args.boxes_file + ": " + std::to_string(o.boxes.size()) + " floats is not (A, 4)");
  o.anchors = o.boxes.size() / 4;
  if (o.scores.size() != o.anchors * classes)
    fail(args.scores_file + ": " + std::to_string(o.scores.size()) + " floats; (A, C) with A = " +
         std::to_string(o.anchors) + " (from " + args.boxes_file + ") and C = " + std::to_string(classes) +
         " labels needs " + std::to_string(o.anchors * classes));
  return o;
}

Outputs run_model(ov::Core& core, const std::shared_ptr<ov::Model>& model, const edgetl::Contract& contract,
                  const std::vector<float>& input, const Args& args, size_t classes) {
  ov::CompiledModel compiled = edgetl::compile(core, model, contract, args.device, args.threads);
  ov::InferRequest request = compiled.create_infer_request();
  request.set_input_tensor(
      ov::Tensor(ov::element::f32, compiled.input().get_shape(), const_cast<float*>(input.data())));
  request.infer();
  const ov::Tensor boxes = request.get_tensor("boxes"), scores = request.get_tensor("scores");
  const ov::Shape bs = boxes.get_shape(), ss = scores.get_shape();
  if (bs.size() != 3 || bs[0] != 1 || bs[2] != 4 || ss.size() != 3 || ss[0] != 1 || ss[1] != bs[1] || ss[2] != classes)
    fail(args.model + ": outputs boxes " + bs.to_string() + " and scores " + ss.to_string() +
         " are not (1, A, 4) and (1, A, " + std::to_string(classes) + ") for the manifest's labels");
  Outputs o;
  o.anchors = bs[1];
  o.boxes.assign(boxes.data<const float>(), boxes.data<const float>() + boxes.get_size());
  o.scores.assign(scores.data<const float>(), scores.data<const float>() + scores.get_size());
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  try {
    ov::Core core;
    auto model = core.read_model(args.model);
    const nlohmann::json manifest = edgetl::read_manifest(model, args.model);
    edgetl::require_task(manifest, "detect", args.model);
    const edgetl::Contract contract = edgetl::contract_from(manifest);
    const auto labels = manifest.at("labels").get<std::vector<std::string>>();

    const edgetl::RgbImage image = edgetl::load_rgb(args.image);
    const std::vector<float> input = edgetl::normalize(edgetl::to_uint8_chw(image, contract), contract);
    if (!args.dump_input.empty()) edgetl::write_floats(args.dump_input, input);
    const Outputs out = args.boxes_file.empty() ? run_model(core, model, contract, input, args, labels.size())
                                                : read_outputs(args, labels.size());

    const edgetl::Geometry g = edgetl::geometry(contract, image.width, image.height);
    std::vector<edgetl::Detection> dets =
        edgetl::decode_image(out.boxes.data(), out.scores.data(), out.anchors, labels.size(), args.decode);
    for (auto& d : dets) d.box = edgetl::to_original(d.box, g, image.width, image.height);

    if (args.json) {
      nlohmann::json result{{"image", args.image},
                            {"size", {image.width, image.height}},
                            {"detections", nlohmann::json::array()}};
      for (const auto& d : dets)
        result["detections"].push_back(
            {{"label", labels[d.cls]}, {"class", d.cls}, {"score", d.score}, {"box", d.box}});
      std::cout << result.dump() << "\n";
    } else {
      if (dets.empty()) std::cerr << "(no detections scoring over " << args.decode.score_thr << ")\n";
      // label, score, x1 y1 x2 y2: rounded as `edgetl predict --json` rounds them
      for (const auto& d : dets)
        std::cout << labels[d.cls] << "\t" << std::fixed << std::setprecision(6) << d.score << "\t"
                  << std::setprecision(2) << d.box[0] << " " << d.box[1] << " " << d.box[2] << " " << d.box[3]
                  << "\n";
    }
  } catch (const std::exception& e) {  // OpenVINO and JSON errors: one line, not an abort
    fail(e.what());
  }
  return 0;
}
