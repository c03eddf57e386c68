#include "agent/control/hit_cost.h"

#include <random>

#include "gtest/gtest.h"

namespace ctxagent {
namespace {

// A target using `base` CPU s/s (times a factor drawn around 1 with `noise` per span), hit `rate`
// times a second while the probes are on, each hit costing it `trap` s plus `bpf` s, under a duty
// cycle of `on_s` on then `off_s` off, fed in 0.5 s reads as the agent does.
struct Target {
  double base = 0.7, noise = 0.03, rate = 40000, trap = 1.5e-6, bpf = 1e-6;
  double drift = 0;  // base CPU added per second
  std::mt19937 rng{42};

  void Run(HitCostEstimator& e, bool on, double seconds, uint64_t processes = 7) {
    std::normal_distribution<double> factor(1, noise);
    const double f = factor(rng);
    for (double t = 0; t < seconds; t += 0.5) {
      const double len = std::min(0.5, seconds - t);
      const uint64_t hits = on ? static_cast<uint64_t>(rate * len) : 0;
      const double cpu = (base * f) * len + hits * (trap + bpf);
      e.Add(on, absl::Seconds(len), cpu, hits, hits * bpf, processes);
      base += drift * len;
    }
  }
  void Periods(HitCostEstimator& e, int n, double on_s, double off_s) {
    for (int i = 0; i < n; ++i) {
      Run(e, false, off_s);
      Run(e, true, on_s);
    }
    Run(e, false, off_s);
  }
};

TEST(HitCostTest, MeasuresTheTrapOnTheTarget) {
  HitCostEstimator e;
  Target t;
  t.Periods(e, 12, 1, 10);
  EXPECT_EQ(e.pairs(), 12);
  ASSERT_TRUE(e.trap_s().has_value());
  EXPECT_NEAR(*e.trap_s(), 1.5e-6, 0.4e-6);
  EXPECT_GE(e.agreed_pairs(), HitCostEstimator::kMinPairs);
}

TEST(HitCostTest, NotBeforeEnoughPairsAgree) {
  HitCostEstimator e;
  Target t;
  t.Periods(e, HitCostEstimator::kMinPairs - 1, 1, 10);
  EXPECT_FALSE(e.trap_s().has_value());
  // A target whose own CPU moves far more than the hits cost: the pairs never agree.
  HitCostEstimator noisy;
  Target n{.noise = 0.5, .rate = 2000};
  n.Periods(noisy, 15, 1, 10);
  EXPECT_EQ(noisy.pairs(), 15);
  EXPECT_FALSE(noisy.trap_s().has_value());
}

TEST(HitCostTest, OffSpansEitherSideCancelADrift) {
  HitCostEstimator e;
  // The target's own CPU grows by 10% of the hits' cost per second: off spans before alone would
  // charge the growth to the probes.
  Target t{.noise = 0.001, .drift = 0.1 * 40000 * 1.5e-6};
  t.Periods(e, 8, 1, 4);
  ASSERT_TRUE(e.trap_s().has_value());
  EXPECT_NEAR(*e.trap_s(), 1.5e-6, 0.1e-6);
}

TEST(HitCostTest, SkipsSpansOverOtherProcessesAndFewHits) {
  HitCostEstimator e;
  Target t;
  // The processes changed between the off span and the on span: no pair.
  t.Run(e, false, 10, 7);
  t.Run(e, true, 1, 8);
  t.Run(e, false, 10, 8);
  // A read spanning a change (0) breaks the sequence as well.
  e.Add(false, absl::Seconds(1), 0.7, 0, 0, 0);
  t.Run(e, true, 1, 8);
  t.Run(e, false, 10, 8);
  EXPECT_EQ(e.pairs(), 0);
  // Too few hits in the on span to stand out of the CPU's own variation.
  Target quiet{.rate = 100};
  quiet.Periods(e, 3, 1, 10);
  EXPECT_EQ(e.pairs(), 0);
}

}  // namespace
}  // namespace ctxagent
