// The Host / Origin / API-key rules of the server (src/server/access.h).
#include <gtest/gtest.h>

#include "server/access.h"

using namespace edgellm::server;

TEST(ServerAccess, LoopbackNames) {
    for (const char* h : {"localhost", "LOCALHOST:11434", "app.localhost", "127.0.0.1", "127.5.6.7:80", "[::1]:11434", "::1"})
        EXPECT_TRUE(is_loopback_name(h)) << h;
    for (const char* h : {"evil.example", "localhost.evil.example", "127.0.0.1.evil.example", "10.0.0.1", "[::2]", "",
                          "127.0.0.1evil"})
        EXPECT_FALSE(is_loopback_name(h)) << h;
}

TEST(ServerAccess, HostCheckOnlyWhenBoundToLoopback) {
    EXPECT_TRUE(host_allowed("localhost:11434", "127.0.0.1"));
    EXPECT_TRUE(host_allowed("", "127.0.0.1"));  // HTTP/1.0
    EXPECT_FALSE(host_allowed("evil.example", "127.0.0.1"));
    EXPECT_FALSE(host_allowed("evil.example:11434", "::1"));
    EXPECT_TRUE(host_allowed("jetson.lan:11434", "0.0.0.0"));  // opened to the network on purpose
}

TEST(ServerAccess, Origins) {
    const std::vector<std::string> none;
    EXPECT_TRUE(origin_allowed("http://localhost:3000", "127.0.0.1", none));
    EXPECT_TRUE(origin_allowed("https://127.0.0.1", "127.0.0.1", none));
    EXPECT_TRUE(origin_allowed("http://192.168.1.5:11434", "192.168.1.5", none));  // the page this server served
    EXPECT_FALSE(origin_allowed("http://192.168.1.6:11434", "192.168.1.5", none));
    EXPECT_FALSE(origin_allowed("http://evil.example", "0.0.0.0", none));
    EXPECT_FALSE(origin_allowed("null", "127.0.0.1", none));
    EXPECT_FALSE(origin_allowed("file://", "127.0.0.1", none));
    EXPECT_FALSE(origin_allowed("http://localhost.evil.example", "127.0.0.1", none));
    EXPECT_TRUE(origin_allowed("https://App.Example", "127.0.0.1", {"https://app.example"}));
    EXPECT_FALSE(origin_allowed("https://app.example:8443", "127.0.0.1", {"https://app.example"}));
    EXPECT_TRUE(origin_allowed("null", "127.0.0.1", {"*"}));
}

TEST(ServerAccess, Bearer) {
    EXPECT_TRUE(bearer_matches("Bearer k3y", "k3y"));
    EXPECT_TRUE(bearer_matches("bearer k3y", "k3y"));
    EXPECT_TRUE(bearer_matches("BEARER   k3y", "k3y"));
    EXPECT_FALSE(bearer_matches("Bearer k3", "k3y"));
    EXPECT_FALSE(bearer_matches("Bearer k3yy", "k3y"));
    EXPECT_FALSE(bearer_matches("Basic k3y", "k3y"));
    EXPECT_FALSE(bearer_matches("k3y", "k3y"));
    EXPECT_FALSE(bearer_matches("", "k3y"));
    EXPECT_FALSE(bearer_matches("Bearer ", ""));
}
