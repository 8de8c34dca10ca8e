// Appends a string as a JSON string literal (with quotes). The export path uses it to embed each
// segment document in the PutTraceSegments body, so it is written for speed on 0.5-64 KB inputs.
#pragma once

#include <string>
#include <string_view>

namespace xrayd {

void AppendJsonString(std::string& out, std::string_view s);

}  // namespace xrayd
