#include "http/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <string>

namespace xrayd::http {
namespace {

TEST(ListeningServer, SecondListenerOnTheSamePortIsRefused) {
  ListeningServer first(1);
  first.routes().Get("/who", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("first", "text/plain");
  });
  auto port = first.Start("127.0.0.1:0", "first");
  ASSERT_TRUE(port.ok());

  ListeningServer second(1);
  auto again = second.Start("127.0.0.1:" + std::to_string(*port), "test API");
  ASSERT_FALSE(again.ok()) << "two listeners shared port " << *port;
  EXPECT_NE(again.error().message.find("cannot bind test API address 127.0.0.1:"), std::string::npos)
      << again.error().message;
  EXPECT_NE(again.error().message.find("in use"), std::string::npos) << again.error().message;

  httplib::Client client("127.0.0.1", *port);
  for (int i = 0; i < 8; ++i) {  // with SO_REUSEPORT some of these would have reached `second`
    auto res = client.Get("/who");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->body, "first");
  }
}

TEST(ListeningServer, PortCanBeReboundAfterStop) {
  int port = 0;
  {
    ListeningServer server(1);
    server.routes().Get("/x", [](const httplib::Request&, httplib::Response& res) { res.set_content("x", "text/plain"); });
    auto bound = server.Start("127.0.0.1:0", "first");
    ASSERT_TRUE(bound.ok());
    port = *bound;
    httplib::Client client("127.0.0.1", port);
    ASSERT_TRUE(client.Get("/x"));  // leaves a connection to go through TIME_WAIT
    server.Stop();
  }
  ListeningServer again(1);
  EXPECT_TRUE(again.Start("127.0.0.1:" + std::to_string(port), "restarted").ok());
}

TEST(ListeningServer, StopRightAfterStartReturns) {
  for (int i = 0; i < 50; ++i) {  // once hung in accept(): httplib ignored stop() before it ran
    ListeningServer server(1);
    ASSERT_TRUE(server.Start("127.0.0.1:0", "short-lived").ok());
    server.Stop();
  }
}

}  // namespace
}  // namespace xrayd::http
