// xrayd's entry point: parse the configuration, start the daemon, wait for SIGTERM/SIGINT, and
// shut down in order. Nothing else lives here.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/config.h"
#include "common/log.h"
#include "daemon.h"

int main(int argc, char** argv) {
  // Block the stop signals before any thread starts, so only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto env = xrayd::aws::ProcessEnvironment();
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
  int sig = 0;
  sigwait(&stop_signals, &sig);
  XLOG_INFO("Received {}; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  daemon.Shutdown();
  return 0;
}
