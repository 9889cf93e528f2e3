// caloforge-thread-check MODEL.pt2: calls generate from several threads at once on one Model and
// checks each result against a call made alone. Exit status 0 when all agree bit for bit.
#include <iostream>
#include <thread>
#include <vector>

#include "caloforge/caloforge.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: caloforge-thread-check MODEL.pt2\n";
    return 2;
  }
  try {
    caloforge::Model model(argv[1], /*runners=*/2);
    std::vector<float> row;
    for (const auto& c : model.conditions()) row.push_back(static_cast<float>((c.min + c.max) / 2));
    const int64_t n = 64;
    std::vector<float> conditions;
    for (int64_t i = 0; i < n; ++i) conditions.insert(conditions.end(), row.begin(), row.end());
    const int threads = 6;
    std::vector<std::vector<float>> alone(threads), together(threads);
    for (int t = 0; t < threads; ++t) alone[t] = model.generate(conditions, n, 100 + t);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { together[t] = model.generate(conditions, n, 100 + t); });
    for (auto& thread : pool) thread.join();
    for (int t = 0; t < threads; ++t)
      if (alone[t] != together[t]) {
        std::cerr << "thread " << t << " got other showers than a call alone\n";
        return 1;
      }
    std::cout << threads << " concurrent calls agree with calls alone\n";
    return 0;
  } catch (const std::exception& exc) {
    std::cerr << "error: " << exc.what() << "\n";
    return 1;
  }
}
