// Documents compressed with a dictionary trained on the store's own documents, over real files: the
// store trains one after kTrainAfterDocuments documents, later rows name it and are smaller, every
// read gives back the exact text sent, before and after a reopen, and a row whose dictionary is gone
// is an error, never wrong text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "store/doc_codec.h"
#include "store/trace_store.h"
#include "tests/support/store_fixture.h"

namespace xrayd::store {
namespace {

using nlohmann::json;
using testing::kT0;
using testing::TraceId;

// A realistic ~1.2 KB segment: HTTP, SQL and AWS subsegments, annotations, metadata.
std::string Realistic(int i) {
  json d = {{"trace_id", TraceId(i)}, {"id", "aaaaaaaaaaaa" + std::to_string(1000 + i % 9000)}, {"name", "checkout-api"},
            {"origin", "AWS::ECS::Container"}, {"start_time", kT0 + i * 0.01}, {"end_time", kT0 + i * 0.01 + 0.087},
            {"http", {{"request", {{"method", i % 3 ? "GET" : "POST"}, {"url", "https://shop.example.com/cart/" + std::to_string(i % 500)},
                                   {"user_agent", "Mozilla/5.0 (X11; Linux x86_64)"}, {"client_ip", "10.0." + std::to_string(i % 256) + ".7"}}},
                      {"response", {{"status", i % 17 ? 200 : 503}, {"content_length", 1200 + i % 300}}}}},
            {"aws", {{"ecs", {{"container", "checkout-7f9c"}}}, {"xray", {{"sdk", "X-Ray for Java"}, {"sdk_version", "2.14.0"}}}}},
            {"annotations", {{"customer_tier", i % 2 ? "gold" : "silver"}, {"cart_items", i % 7}}},
            {"metadata", {{"debug", {{"request_id", "req-" + std::to_string(i * 7919)}}}}},
            {"subsegments", json::array({{{"id", "bbbbbbbbbbbb" + std::to_string(1000 + i % 9000)}, {"name", "inventory"},
                                          {"namespace", "remote"}, {"start_time", kT0 + i * 0.01 + 0.002},
                                          {"end_time", kT0 + i * 0.01 + 0.04},
                                          {"http", {{"request", {{"method", "GET"}, {"url", "http://inventory/items"}}},
                                                    {"response", {{"status", 200}}}}}},
                                         {{"id", "cccccccccccc" + std::to_string(1000 + i % 9000)}, {"name", "DynamoDB"},
                                          {"namespace", "aws"}, {"start_time", kT0 + i * 0.01 + 0.05},
                                          {"end_time", kT0 + i * 0.01 + 0.06},
                                          {"aws", {{"operation", "GetItem"}, {"table_name", "carts"}, {"region", "eu-west-1"}}}}})}};
  return d.dump();
}

class StoreCompressionTest : public testing::StoreFixture {
 protected:
  int64_t Scalar(const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(writer_, sql, -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(writer_);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    const int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }
  void Fill(int first, int n) {
    for (int i = first; i < first + n; i += 500) {
      std::vector<std::string> batch;
      for (int k = i; k < std::min(first + n, i + 500); ++k) batch.push_back(Realistic(k));
      auto r = store_->Append(batch);
      ASSERT_TRUE(r) << r.error().message;
      ASSERT_TRUE(r->empty());
    }
  }
  void ExpectExact(int i) {
    auto segs = store_->SegmentsOf(TraceId(i));
    ASSERT_TRUE(segs) << segs.error().message;
    ASSERT_EQ(segs->size(), 1u);
    EXPECT_EQ((*segs)[0].doc, Realistic(i));
  }
};

TEST_F(StoreCompressionTest, TrainsADictionaryAndReadsBackExactText) {
  Open();
  Fill(0, kTrainAfterDocuments);
  EXPECT_EQ(Scalar("SELECT count(*) FROM dictionaries"), 1);
  const int64_t plain = Realistic(7).size();
  EXPECT_EQ(Scalar("SELECT count(*) FROM segments WHERE dict = 0"), 0) << "rows stored before it are compressed too";
  Fill(kTrainAfterDocuments, 1000);
  EXPECT_EQ(Scalar("SELECT count(*) FROM segments WHERE dict != 0"), kTrainAfterDocuments + 1000);
  const int64_t packed = Scalar("SELECT avg(length(CAST(doc AS BLOB))) FROM segments WHERE dict != 0");
  EXPECT_GT(plain, 900);
  EXPECT_LT(packed * 4, plain) << "plain " << plain << " B, compressed " << packed << " B";
  ExpectExact(7);
  ExpectExact(kTrainAfterDocuments + 17);
  bool truncated = true;
  auto docs = store_->DocumentsInRange(kT0 + kTrainAfterDocuments * 0.01, kT0 + kTrainAfterDocuments * 0.01 + 1,
                                       1000, &truncated);
  ASSERT_TRUE(docs);
  ASSERT_FALSE(docs->empty());
  EXPECT_NE(json::parse(docs->front()).value("name", ""), "");
  Open();  // the dictionary is read back from the file
  ExpectExact(kTrainAfterDocuments + 999);
  Fill(kTrainAfterDocuments + 1000, 10);
  EXPECT_EQ(Scalar("SELECT count(*) FROM dictionaries"), 1);
  ExpectExact(kTrainAfterDocuments + 1005);
}

TEST_F(StoreCompressionTest, AMissingDictionaryIsAnErrorNotWrongText) {
  int errors = 0;
  StoreOptions o;
  o.on_error = [&](const Error&) { ++errors; };
  Open(o);
  Fill(0, kTrainAfterDocuments + 10);
  ASSERT_EQ(sqlite3_exec(writer_, "DELETE FROM dictionaries", nullptr, nullptr, nullptr), SQLITE_OK);
  Open(o);  // a fresh process: the dictionary is not cached
  auto segs = store_->SegmentsOf(TraceId(kTrainAfterDocuments + 3));
  EXPECT_FALSE(segs);
  EXPECT_GT(errors, 0);
  // Documents stored before the dictionary were compressed with it too.
  EXPECT_FALSE(store_->SegmentsOf(TraceId(3)));
}

TEST(DocCodec, RoundTripAndDamage) {
  std::vector<std::string> samples;
  for (int i = 0; i < 2000; ++i) samples.push_back(Realistic(i));
  auto trained = TrainDictionary(samples);
  ASSERT_TRUE(trained);
  auto dict = Dict::Make(1, *trained);
  ASSERT_TRUE(dict);
  const std::string doc = Realistic(123456);
  auto z = dict->Compress(doc);
  ASSERT_TRUE(z);
  EXPECT_LT(z->size(), doc.size() / 4);
  auto back = dict->Decompress(*z);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, doc);
  std::string damaged = *z;
  damaged[damaged.size() / 2] ^= 0x5a;
  EXPECT_FALSE(dict->Decompress(damaged)) << "the frame checksum catches damage";
  EXPECT_FALSE(dict->Decompress("not zstd"));
}

}  // namespace
}  // namespace xrayd::store
