// caloforge-bench: ms/shower of a model package in C++, per batch size, as one JSON line.
//
//   caloforge-bench MODEL.pt2 [--batch-sizes 1,100,1000,10000] [--repeats 3] [--threads T]
//
// Each point is the median of --repeats timed calls of Model::generate (noise drawing included,
// as Python's `caloforge bench` includes it) after one untimed warm-up call, at conditions in the
// middle of the model's training range. Batch 1 is timed over enough calls to last ~0.2 s.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "caloforge/caloforge.hpp"

namespace {

double seconds_of(const caloforge::Model& model, const std::vector<float>& row, int64_t batch,
                  int calls) {
  std::vector<float> conditions;
  for (int64_t i = 0; i < batch; ++i) conditions.insert(conditions.end(), row.begin(), row.end());
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < calls; ++c) model.generate(conditions, batch, static_cast<uint64_t>(c));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls;
}

int run(int argc, char** argv) {
  std::string path, sizes_text = "1,100,1000,10000";
  int repeats = 3, threads = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--batch-sizes" || arg == "--repeats" || arg == "--threads") && i + 1 >= argc)
      throw caloforge::Error(arg + " needs a value");
    if (arg == "--batch-sizes") sizes_text = argv[++i];
    else if (arg == "--repeats") repeats = std::stoi(argv[++i]);
    else if (arg == "--threads") threads = std::stoi(argv[++i]);
    else if (path.empty() && arg[0] != '-') path = arg;
    else throw caloforge::Error("unexpected argument " + arg);
  }
  if (path.empty()) throw caloforge::Error("usage: caloforge-bench MODEL.pt2 [options]");
  if (threads > 0) caloforge::set_threads(threads);
  caloforge::Model model(path);
  std::vector<float> row;
  for (const auto& c : model.conditions()) row.push_back(static_cast<float>((c.min + c.max) / 2));
  std::vector<int64_t> sizes;
  std::stringstream stream(sizes_text);
  for (std::string item; std::getline(stream, item, ',');) sizes.push_back(std::stoll(item));
  std::cout << "{\"model\": \"" << path << "\", \"ms_per_shower\": {";
  for (size_t s = 0; s < sizes.size(); ++s) {
    const int64_t batch = sizes[s];
    const double once = seconds_of(model, row, batch, 1);  // warm-up, and a guess of the cost
    const int calls = std::max(1, static_cast<int>(0.2 / std::max(once, 1e-6)));
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) times.push_back(seconds_of(model, row, batch, calls));
    std::sort(times.begin(), times.end());
    std::cout << (s ? ", " : "") << "\"" << batch << "\": " << 1e3 * times[times.size() / 2] / batch;
  }
  std::cout << "}}\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& exc) {
    std::cerr << "error: " << exc.what() << "\n";
  }
  return 1;
}
