// caloforge-generate: N showers from a model package, written as a caloforge shower file.
//
//   caloforge-generate MODEL.pt2 --out showers.h5 --n 1000 --condition px=0 --condition py=0 ...
//   caloforge-generate MODEL.pt2 --out showers.h5 --conditions rows.txt [--seed 7]
//
// rows.txt holds one shower per line, the model's conditions in its order, whitespace-separated
// ('#' starts a comment). Showers are made in blocks of Model::kMaxBatch; block b draws its noise
// from seed + b, so a file of at most one block equals Python's decode with torch's generator
// seeded with --seed. Any error is one line on stderr and exit status 1.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "caloforge/caloforge.hpp"
#include "caloforge/showerfile.hpp"

namespace {

struct Options {
  std::string model, out, conditions_file, detector;
  std::vector<std::pair<std::string, float>> fixed;
  int64_t n = -1;
  uint64_t seed = 0;
  int threads = 0;
  bool overwrite = false;
};

[[noreturn]] void usage_error(const std::string& message) {
  throw caloforge::Error(message + " (usage: caloforge-generate MODEL --out FILE.h5 "
                         "(--n N --condition NAME=VALUE ... | --conditions FILE) [--seed S] "
                         "[--threads T] [--detector NAME] [--overwrite])");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    try {
      if (arg == "--out") o.out = value();
      else if (arg == "--n") o.n = std::stoll(value());
      else if (arg == "--seed") o.seed = std::stoull(value());
      else if (arg == "--threads") o.threads = std::stoi(value());
      else if (arg == "--conditions") o.conditions_file = value();
      else if (arg == "--detector") o.detector = value();
      else if (arg == "--overwrite") o.overwrite = true;
      else if (arg == "--condition") {
        std::string item = value();
        auto eq = item.find('=');
        if (eq == std::string::npos) usage_error("--condition must look like NAME=VALUE");
        o.fixed.emplace_back(item.substr(0, eq), std::stof(item.substr(eq + 1)));
      } else if (!arg.empty() && arg[0] == '-') usage_error("unknown option " + arg);
      else if (o.model.empty()) o.model = arg;
      else usage_error("unexpected argument " + arg);
    } catch (const std::logic_error&) {  // stoll and friends on text that is not a number
      usage_error(arg + " needs a number");
    }
  }
  if (o.model.empty()) usage_error("no model given");
  if (o.out.empty()) usage_error("no --out given");
  if (o.conditions_file.empty() == o.fixed.empty())
    usage_error("give either --conditions FILE or --condition NAME=VALUE for every condition");
  return o;
}

std::vector<float> read_rows(const std::string& path, size_t k, int64_t& n) {
  std::ifstream in(path);
  if (!in) throw caloforge::Error("cannot read conditions file " + path);
  std::vector<float> values;
  std::string line;
  int64_t rows = 0, line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    line = line.substr(0, line.find('#'));
    std::istringstream fields(line);
    std::vector<float> row;
    float x;
    while (fields >> x) row.push_back(x);
    if (!fields.eof()) throw caloforge::Error(path + ":" + std::to_string(line_number) +
                                              ": not a number");
    if (row.empty()) continue;
    if (row.size() != k)
      throw caloforge::Error(path + ":" + std::to_string(line_number) + ": expected " +
                             std::to_string(k) + " conditions, got " + std::to_string(row.size()));
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (n >= 0 && n != rows)
    throw caloforge::Error("--n " + std::to_string(n) + " but " + path + " holds " +
                           std::to_string(rows) + " rows");
  n = rows;
  return values;
}

std::string json_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

int run(int argc, char** argv) {
  Options o = parse(argc, argv);
  if (o.threads > 0) caloforge::set_threads(o.threads);
  caloforge::Model model(o.model);
  if (!o.detector.empty()) model.require_detector(o.detector);
  const size_t k = model.conditions().size();
  std::vector<float> conditions;
  if (!o.conditions_file.empty()) {
    conditions = read_rows(o.conditions_file, k, o.n);
  } else {
    if (o.n <= 0) usage_error("--n must be positive");
    std::vector<float> row(k);
    std::vector<bool> given(k, false);
    for (const auto& [name, value] : o.fixed) {
      int i = model.index_of(name);
      row[i] = value;
      given[i] = true;
    }
    for (size_t i = 0; i < k; ++i)
      if (!given[i])
        throw caloforge::ConditionError("no value for condition " + model.conditions()[i].name);
    for (int64_t e = 0; e < o.n; ++e) conditions.insert(conditions.end(), row.begin(), row.end());
  }
  if (o.n <= 0) throw caloforge::Error("no showers to make");
  int64_t outside = 0;
  for (int64_t e = 0; e < o.n; ++e) outside += !model.in_training_range(&conditions[e * k]);
  if (outside > 0)
    std::cerr << "warning: " << outside << " of " << o.n
              << " showers have conditions outside the model's training range\n";
  std::string producer = model.producer();
  producer = producer.substr(0, producer.rfind('}')) + ", \"backend\": \"c++ libtorch aoti\", " +
             "\"model\": \"" + json_escape(model.path()) + "\"}";
  caloforge::ShowerFileWriter writer(o.out, model, o.seed, o.n, producer, o.overwrite);
  const auto start = std::chrono::steady_clock::now();
  const int64_t block = caloforge::Model::kMaxBatch;
  for (int64_t first = 0, b = 0; first < o.n; first += block, ++b) {
    const int64_t rows = std::min(block, o.n - first);
    std::vector<float> part(conditions.begin() + first * k,
                            conditions.begin() + (first + rows) * k);
    writer.append(model.generate(part, rows, o.seed + b), part, rows);
    std::cerr << "\rcaloforge-generate: " << writer.committed() << "/" << o.n << " showers"
              << std::flush;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string path = writer.finish();
  std::cerr << "\n";
  std::cout << "wrote " << path << ": " << o.n << " showers in " << seconds << " s\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const caloforge::Error& exc) {
    std::cerr << "error: " << exc.what() << "\n";
  } catch (const std::exception& exc) {
    std::cerr << "error: " << exc.what() << "\n";
  }
  return 1;
}
