#include "xray/emitter.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <thread>
#include <vector>

#include "test_udp_listener.h"
#include "xray/log.h"

namespace xray {
namespace {

TEST(DaemonAddress, Forms) {
  auto a = DaemonAddress::Parse("aws-xray.ops-monitoring-ns.svc.cluster.local:2000");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->udp_host, "aws-xray.ops-monitoring-ns.svc.cluster.local");
  EXPECT_EQ(a->udp_port, 2000);
  EXPECT_EQ(a->tcp_host, a->udp_host);
  EXPECT_EQ(a->tcp_port, 2000);

  auto b = DaemonAddress::Parse("tcp:127.0.0.1:2001 udp:127.0.0.2:2002");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->tcp_host, "127.0.0.1");
  EXPECT_EQ(b->tcp_port, 2001);
  EXPECT_EQ(b->udp_host, "127.0.0.2");
  EXPECT_EQ(b->udp_port, 2002);

  auto c = DaemonAddress::Parse("  udp:10.0.0.1:3000   tcp:10.0.0.2:3001 ");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->udp_host, "10.0.0.1");
  EXPECT_EQ(c->tcp_port, 3001);

  auto d = DaemonAddress::Parse("[::1]:2000");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->udp_host, "::1");

  for (const char* bad : {"", "localhost", ":2000", "host:", "host:0", "host:70000", "host:20x0", "::1:2000",
                          "udp:a:1", "udp:a:1 udp:b:2", "tcp:a:1 udp:b:2 x:c:3", "tcp:a:1 foo:b:2", "a:1 b:2"})
    EXPECT_FALSE(DaemonAddress::Parse(bad)) << bad;
}

TEST(DaemonAddress, FromEnvironment) {
  setenv("AWS_XRAY_DAEMON_ADDRESS", "tcp:h1:1 udp:h2:2", 1);
  EXPECT_EQ(DaemonAddress::FromEnvironment().udp_host, "h2");
  Logger prev = SetLogger({});
  setenv("AWS_XRAY_DAEMON_ADDRESS", "nonsense", 1);
  EXPECT_EQ(DaemonAddress::FromEnvironment().udp_host, "127.0.0.1");  // invalid: default, logged
  SetLogger(prev);
  unsetenv("AWS_XRAY_DAEMON_ADDRESS");
  auto def = DaemonAddress::FromEnvironment();
  EXPECT_EQ(def.udp_host, "127.0.0.1");
  EXPECT_EQ(def.udp_port, 2000);
}

DaemonAddress Local(uint16_t port) {
  DaemonAddress a;
  a.udp_port = port;
  return a;
}

TEST(UdpEmitter, SendsHeaderLineAndDocument) {
  testing::UdpListener daemon;
  UdpEmitter emitter(Local(daemon.port()));
  auto seg = Segment::Create("svc");
  seg->Close();
  emitter.Send(*seg);
  auto got = daemon.Receive();
  ASSERT_TRUE(got);
  ASSERT_EQ(got->substr(0, kDaemonHeader.size()), kDaemonHeader);
  Json doc = Json::parse(got->substr(kDaemonHeader.size()));
  EXPECT_EQ(doc["id"], seg->id());
  EXPECT_EQ(emitter.sent(), 1u);
}

TEST(UdpEmitter, HostNameIsResolvedAndRefresherStopsPromptly) {
  testing::UdpListener daemon;
  DaemonAddress a;
  a.udp_host = "localhost";
  a.udp_port = daemon.port();
  auto started = std::chrono::steady_clock::now();
  {
    UdpEmitter emitter(a);  // a host name: owns a re-resolving thread
    auto seg = Segment::Create("svc");
    seg->Close();
    emitter.Send(*seg);
    // localhost may resolve to ::1 first on some hosts, where nothing listens; accept either outcome but
    // require a datagram when it went to 127.0.0.1.
    if (emitter.sent() == 1) {
      auto got = daemon.Receive(1000);
      if (got) {
        EXPECT_EQ(got->substr(0, kDaemonHeader.size()), kDaemonHeader);
      }
    }
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));  // the destructor joined at once
}

TEST(UdpEmitter, UnsampledSegmentsAreNotSent) {
  testing::UdpListener daemon;
  UdpEmitter emitter(Local(daemon.port()));
  auto seg = Segment::Create("svc", {}, {}, /*sampled=*/false);
  seg->Close();
  emitter.Send(*seg);
  EXPECT_FALSE(daemon.Receive(200));
  EXPECT_EQ(emitter.sent(), 0u);
}

TEST(UdpEmitter, LargeSegmentIsSplitIntoSubsegments) {
  testing::UdpListener daemon;
  UdpEmitter emitter(Local(daemon.port()));
  auto seg = Segment::Create("svc");
  std::string blob(20000, 'x');
  for (int i = 0; i < 5; ++i) {
    Subsegment* s = seg->AddSubsegment("part" + std::to_string(i));
    s->PutMetadata("blob", blob);
    s->Close();
  }
  seg->Close();
  emitter.Send(*seg);
  auto first = daemon.Receive();
  ASSERT_TRUE(first);
  Json parent = Json::parse(first->substr(kDaemonHeader.size()));
  EXPECT_EQ(parent["id"], seg->id());
  EXPECT_FALSE(parent.contains("subsegments"));
  for (int i = 0; i < 5; ++i) {
    auto got = daemon.Receive();
    ASSERT_TRUE(got) << i;
    Json sub = Json::parse(got->substr(kDaemonHeader.size()));
    EXPECT_EQ(sub["type"], "subsegment");
    EXPECT_EQ(sub["trace_id"], seg->trace_id());
    EXPECT_EQ(sub["parent_id"], seg->id());
    EXPECT_EQ(sub["name"], "part" + std::to_string(i));
  }
  EXPECT_EQ(emitter.sent(), 6u);
}

// The Recorder's default: the request thread only serializes and queues; the emitter's own thread sends.
TEST(UdpEmitter, BackgroundSenderDeliversEverySegmentAndSplitsLargeOnes) {
  testing::UdpListener daemon;
  std::vector<std::string> ids;
  {
    UdpEmitter emitter(Local(daemon.port()), UdpEmitter::Sender::kBackgroundThread);
    for (int i = 0; i < 50; ++i) {
      auto seg = Segment::Create("svc");
      seg->Close();
      ids.push_back(seg->id());
      emitter.Send(*seg);
    }
    auto big = Segment::Create("big");
    for (int i = 0; i < 2; ++i) {
      Subsegment* s = big->AddSubsegment("part" + std::to_string(i));
      s->PutMetadata("blob", std::string(40000, 'y'));
      s->Close();
    }
    big->Close();
    ids.push_back(big->id());
    emitter.Send(*big);
    // Destroyed right away: what is queued must still go out before the destructor returns.
  }
  std::vector<std::string> got_ids;
  int subsegments = 0;
  while (auto got = daemon.Receive(500)) {
    Json doc = Json::parse(got->substr(kDaemonHeader.size()));
    if (doc.value("type", "") == "subsegment") {
      ++subsegments;
      EXPECT_EQ(doc["parent_id"], ids.back());
    } else {
      got_ids.push_back(doc["id"]);
    }
  }
  EXPECT_EQ(got_ids, ids);  // all of them, in order
  EXPECT_EQ(subsegments, 2);
}

TEST(UdpEmitter, BackgroundSenderIsUsableFromManyThreads) {
  testing::UdpListener daemon;
  UdpEmitter emitter(Local(daemon.port()), UdpEmitter::Sender::kBackgroundThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto seg = Segment::Create("svc");
        seg->Close();
        emitter.Send(*seg);
      }
    });
  for (auto& t : threads) t.join();
  int received = 0;
  while (received < 100 && daemon.Receive(2000)) ++received;
  EXPECT_EQ(received, 100);
  // The background thread counts a batch after sendmmsg returns, so the datagrams can arrive
  // before the count does.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (emitter.sent() + emitter.dropped() < 100u && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(emitter.sent() + emitter.dropped(), 100u);
}

TEST(UdpEmitter, NoDaemonNeverThrows) {
  Logger prev = SetLogger({});
  uint16_t port;
  {
    testing::UdpListener closed;  // take a free port, then close it
    port = closed.port();
  }
  UdpEmitter emitter(Local(port));
  auto seg = Segment::Create("svc");
  for (int i = 0; i < 5; ++i) EXPECT_NO_THROW(emitter.Send(*seg));
  DaemonAddress unresolvable;
  unresolvable.udp_host = "no-such-host.invalid";
  UdpEmitter nowhere(unresolvable);
  EXPECT_NO_THROW(nowhere.Send(*seg));
  EXPECT_EQ(nowhere.dropped(), 1u);
  SetLogger(prev);
}

}  // namespace
}  // namespace xray
