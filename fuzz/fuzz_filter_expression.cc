// Fuzzes the filter expression parser and evaluator (user input from the API).
#include <cstdint>
#include <string_view>

#include "api/filter_expression.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = xrayd::api::Filter::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (f) {
    xrayd::store::TraceSummaryRow t;
    t.annotations = {{"k", "svc", "\"v\""}, {"n", "", "1.5"}};
    t.services = {{"svc", "remote"}};
    (void)f->Matches(t);
  }
  return 0;
}
