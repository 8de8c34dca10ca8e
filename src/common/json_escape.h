// Appends a string as a JSON string literal (with quotes). The export path uses it to embed each
// segment document in the PutTraceSegments body, so it is written for speed on 0.5-64 KB inputs.
#pragma once

#include <string>
#include <string_view>

namespace xrayd {

// Picks the fastest path this CPU runs (checked once): AVX-512 VBMI2 where present (Ice Lake and
// later, Zen 4), else SSE2. Both produce the same bytes.
void AppendJsonString(std::string& out, std::string_view s);

namespace detail {  // the paths, for tests and benchmarks
void AppendJsonStringSse2(std::string& out, std::string_view s);
void AppendJsonStringAvx512(std::string& out, std::string_view s);  // only where HaveAvx512Escape()
bool HaveAvx512Escape();
}  // namespace detail

}  // namespace xrayd
