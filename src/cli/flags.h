// A command-line parser with the semantics of Go's `flag` package, which AWS's daemon uses, so
// that every manifest written for it parses the same here: a flag may be written -name or
// --name; a value as -name=value or -name value; booleans as -name, -name=true or -name=false
// (a boolean never takes the next argument). Parsing stops at "--" or the first non-flag
// argument; the rest is returned as positional arguments. Repeating a flag keeps the last value.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace xrayd::cli {

struct FlagSpec {
  std::vector<std::string> names;  // e.g. {"b", "bind"}; all spellings of one flag
  bool is_bool = false;
};

struct ParsedFlags {
  // Canonical name (the spec's last name) → value ("true"/"false" for booleans).
  std::map<std::string, std::string> values;
  std::map<std::string, std::vector<std::string>> all;  // every value of a repeated flag, in order
  std::vector<std::string> positional;
  bool Has(const std::string& name) const { return values.count(name) > 0; }
  const std::string& Get(const std::string& name) const { return values.at(name); }
};

// Errors read like Go's: "flag provided but not defined: -x", "flag needs an argument: -b".
Result<ParsedFlags> ParseFlags(const std::vector<FlagSpec>& specs, const std::vector<std::string>& args);

// Go's strconv.ParseBool spellings: 1 t T TRUE true True / 0 f F FALSE false False.
Result<bool> ParseGoBool(const std::string& s);

}  // namespace xrayd::cli
