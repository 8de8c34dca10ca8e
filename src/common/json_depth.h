// How deep JSON text nests, found without parsing it (for text from the network, before nlohmann).
//
// nlohmann's DOM costs about 70 bytes per '[' of input (8 MB of "[[[[" took 590 MB), and its
// serializer (dump) recurses once per level, so a value nested 100,000 deep that reaches a dump
// overflows the stack. JsonNestedWithin() scans the text once, in constant stack, so a caller can
// refuse such text before the parser sees it. Brackets inside strings (escapes included) do not
// count; unbalanced closers are the parser's to refuse.
#pragma once

#include <cstddef>
#include <string_view>

namespace xrayd {

// Whether no array or object in `text` is nested more than `max_depth` levels deep. Linear time.
inline bool JsonNestedWithin(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character, a quote included, is skipped
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

}  // namespace xrayd
