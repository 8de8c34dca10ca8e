// xrayd's entry point: parse the configuration, start the daemon, wait for SIGTERM/SIGINT, and
// shut down in order. Nothing else lives here.
#include <malloc.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "cli/config.h"
#include "cli/healthcheck.h"
#include "common/log.h"
#include "daemon.h"

namespace {

// glibc malloc, set so that a burst of large requests (PutTraceSegments bodies of up to 8 MB, their
// parse buffers, documents of up to 64 KB queued for the store) gives its memory back afterwards
// (bench/put_memory.py):
// - Allocations of 1 MB and more are mmapped, so freeing one unmaps it. glibc's default threshold
//   starts at 128 KB but rises to the size of every mmapped chunk freed (up to 32 MB); after the
//   first large body, later ones came from heap arenas, which keep their pages.
// - Smaller chunks freed in the 30-odd threads' arenas stay mapped (holes between live chunks are
//   not trimmed on free), so the main thread, idle in sigwait, returns free pages once a second
//   when the arenas hold more than kTrimAboveBytes free.
constexpr size_t kMmapThresholdBytes = 1 << 20;
constexpr size_t kTrimAboveBytes = 16 << 20;

void SetMallocForBursts() {
  if (const char* v = std::getenv("XRAYD_MALLOC_DEFAULTS"); v != nullptr && v[0] == '1') return;  // bench A/B
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThresholdBytes));
}

void ReturnFreeMemory() {
  if (const char* v = std::getenv("XRAYD_MALLOC_DEFAULTS"); v != nullptr && v[0] == '1') return;  // bench A/B
  if (mallinfo2().fordblks > kTrimAboveBytes) malloc_trim(0);
}

// Waits for one of `signals`, returning free memory to the kernel each second meanwhile.
int WaitForStop(const sigset_t& signals) {
  const timespec second{1, 0};
  while (true) {
    const int sig = sigtimedwait(&signals, nullptr, &second);
    if (sig > 0) return sig;
    if (errno == EAGAIN) ReturnFreeMemory();
  }
}

}  // namespace

int main(int argc, char** argv) {
  SetMallocForBursts();  // before any thread starts and allocates
  // Block the stop signals before any thread starts, so only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto env = xrayd::aws::ProcessEnvironment();
  if (!args.empty() && args.front() == "healthcheck")
    return xrayd::cli::RunHealthcheck({args.begin() + 1, args.end()}, env);
  auto config = xrayd::cli::LoadConfig(args, env);
  if (!config) {
    std::fprintf(stderr, "xrayd: %s\nRun 'xrayd --help' for usage.\n", config.error().message.c_str());
    return 2;
  }
  if (config->show_help) {
    std::fputs(xrayd::cli::UsageText().c_str(), stdout);
    return 0;
  }
  if (config->show_version) {
    std::printf("xrayd version %s (AWS X-Ray daemon compatible)\n", XRAYD_VERSION);
    return 0;
  }
  if (config->check_config) {
    std::fputs(config->ToYaml().c_str(), stdout);
    const bool needs_xray = !config->serve || config->forward;
    auto endpoint = needs_xray ? xrayd::ResolveXrayEndpoint(*config, env)
                               : xrayd::Result<xrayd::ResolvedEndpoint>(xrayd::ResolvedEndpoint{});
    std::fputs(xrayd::DescribePipeline(*config, endpoint ? endpoint->url : "").c_str(), stdout);
    if (!endpoint) {
      std::fprintf(stderr, "xrayd: %s\n", endpoint.error().message.c_str());
      return 2;
    }
    return 0;
  }
  if (auto st = xrayd::log::Init({config->log_level, config->log_file, config->log_rotation}); !st) {
    std::fprintf(stderr, "xrayd: %s\n", st.error().message.c_str());
    return 1;
  }

  xrayd::Daemon daemon(*config, env);
  if (auto st = daemon.Start(); !st) {
    XLOG_ERROR("{}", st.error().message);
    daemon.Shutdown();
    return 1;
  }
  const int sig = WaitForStop(stop_signals);
  XLOG_INFO("Received {}; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  daemon.Shutdown();
  return 0;
}
