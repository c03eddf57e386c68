#include "agent/session/stop.h"

#include <signal.h>

#include <atomic>

namespace ctxagent {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

}  // namespace

void InstallStopHandlers() {
  // Without SA_RESTART: a signal interrupts the event wait, so a stop is seen at once.
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool StopRequested() { return g_stop; }

}  // namespace ctxagent
