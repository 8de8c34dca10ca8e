#include "api/filter_expression.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <variant>
#include <vector>

namespace xrayd::api {
namespace {

// ---- Lexer ----

enum class Tok { kWord, kString, kNumber, kOp, kLParen, kRParen, kLBrace, kRBrace, kComma, kColon, kBang, kEnd };

struct Token {
  Tok kind;
  std::string text;  // words lower-cased; strings unescaped
  double number = 0;
  size_t pos = 0;
};

Result<std::vector<Token>> Lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  auto err = [&](const std::string& what) {
    return Error::InvalidArgument("filter expression: " + what + " at position " + std::to_string(i + 1));
  };
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    const size_t start = i;
    if (c == '"') {
      std::string v;
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          v.push_back(s[i + 1]);
          i += 2;
        } else if (s[i] == '"') {
          closed = true;
          ++i;
          break;
        } else {
          v.push_back(s[i++]);
        }
      }
      if (!closed) return err("unterminated string");
      out.push_back({Tok::kString, v, 0, start});
    } else if (std::isdigit(static_cast<unsigned char>(c)) || (c == '-' && i + 1 < s.size() && (std::isdigit(static_cast<unsigned char>(s[i + 1])) || s[i + 1] == '.')) || c == '.') {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(std::string(s.substr(i, 64)), &used);
      } catch (...) {
        return err("bad number");
      }
      i += used;
      out.push_back({Tok::kNumber, std::string(s.substr(start, used)), v, start});
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
        ++i;
      std::string w(s.substr(start, i - start));
      std::string lower = w;
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      // Annotation keys keep their case.
      if (lower.rfind("annotation.", 0) == 0) lower = "annotation." + w.substr(11);
      out.push_back({Tok::kWord, lower, 0, start});
    } else if (c == '(' || c == ')' || c == '{' || c == '}' || c == ',' || c == ':') {
      static constexpr std::string_view kChars = "(){},:";
      static constexpr Tok kKinds[] = {Tok::kLParen, Tok::kRParen, Tok::kLBrace, Tok::kRBrace, Tok::kComma, Tok::kColon};
      out.push_back({kKinds[kChars.find(c)], std::string(1, c), 0, start});
      ++i;
    } else if (c == '=' || c == '<' || c == '>' || c == '!') {
      std::string op(1, c);
      if (i + 1 < s.size() && s[i + 1] == '=') op.push_back('=');
      i += op.size();
      if (op == "!") {
        out.push_back({Tok::kBang, op, 0, start});
      } else {
        out.push_back({Tok::kOp, op == "==" ? "=" : op, 0, start});
      }
    } else {
      // Only the byte's value goes into the message: a non-ASCII byte alone is not valid UTF-8, and
      // the message is sent back to the client.
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(c));
        return err(std::string("unexpected byte ") + hex + " (outside quoted strings only ASCII is allowed)");
      }
      return err(std::string("unexpected character '") + c + "'");
    }
  }
  out.push_back({Tok::kEnd, "", 0, s.size()});
  return out;
}

}  // namespace

// ---- AST ----

using Value = std::variant<std::monostate, double, std::string, bool>;

// The service whose own flags a sub-filter's ok/error/fault/throttle read (service(...) { ... }).
struct FlagScope {
  std::string name, type;
};

class FilterNode {
 public:
  virtual ~FilterNode() = default;
  virtual bool Eval(const store::TraceSummaryRow& t) const = 0;
  // A necessary condition of Eval (see Filter::NecessaryCondition); nullopt: none. `scope`: the
  // flags are that service's (null: the trace's).
  virtual std::optional<store::IndexCondition> Necessary(const FlagScope* scope) const {
    (void)scope;
    return std::nullopt;
  }
};

namespace {

using NodePtr = std::shared_ptr<const FilterNode>;

using Condition = std::optional<store::IndexCondition>;

// Both sides' conditions hold (either alone is also necessary).
Condition BothOf(Condition a, Condition b) {
  if (!a || !b) return a ? std::move(a) : std::move(b);
  return store::IndexCondition::And({std::move(*a), std::move(*b)});
}

struct And final : FilterNode {
  NodePtr a, b;
  And(NodePtr x, NodePtr y) : a(std::move(x)), b(std::move(y)) {}
  bool Eval(const store::TraceSummaryRow& t) const override { return a->Eval(t) && b->Eval(t); }
  Condition Necessary(const FlagScope* scope) const override {
    return BothOf(a->Necessary(scope), b->Necessary(scope));
  }
};
struct Or final : FilterNode {
  NodePtr a, b;
  Or(NodePtr x, NodePtr y) : a(std::move(x)), b(std::move(y)) {}
  bool Eval(const store::TraceSummaryRow& t) const override { return a->Eval(t) || b->Eval(t); }
  // Only when each side has one: a side without could match any trace.
  Condition Necessary(const FlagScope* scope) const override {
    Condition x = a->Necessary(scope), y = b->Necessary(scope);
    if (!x || !y) return std::nullopt;
    return store::IndexCondition::Or({std::move(*x), std::move(*y)});
  }
};
struct Not final : FilterNode {
  NodePtr a;
  explicit Not(NodePtr x) : a(std::move(x)) {}
  bool Eval(const store::TraceSummaryRow& t) const override { return !a->Eval(t); }
};
struct Const final : FilterNode {
  bool v;
  explicit Const(bool x) : v(x) {}
  bool Eval(const store::TraceSummaryRow&) const override { return v; }
};

bool CompareNumbers(double a, const std::string& op, double b) {
  if (op == "=") return a == b;
  if (op == "!=") return a != b;
  if (op == "<") return a < b;
  if (op == "<=") return a <= b;
  if (op == ">") return a > b;
  if (op == ">=") return a >= b;
  return false;
}

bool CompareStrings(const std::string& a, const std::string& op, const std::string& b) {
  if (op == "=") return a == b;
  if (op == "!=") return a != b;
  if (op == "contains") return a.find(b) != std::string::npos;
  if (op == "beginswith") return a.rfind(b, 0) == 0;
  if (op == "endswith") return a.size() >= b.size() && a.compare(a.size() - b.size(), b.size(), b) == 0;
  if (op == "<") return a < b;
  if (op == "<=") return a <= b;
  if (op == ">") return a > b;
  if (op == ">=") return a >= b;
  return false;
}

enum class Field { kResponseTime, kDuration, kHttpStatus, kHttpUrl, kHttpMethod, kUserAgent, kClientIp, kUser,
                   kOk, kError, kFault, kThrottle, kPartial, kAnnotation };

std::optional<Field> FieldOf(const std::string& w) {
  static const std::pair<const char*, Field> kFields[] = {
      {"responsetime", Field::kResponseTime}, {"duration", Field::kDuration}, {"http.status", Field::kHttpStatus},
      {"http.url", Field::kHttpUrl}, {"http.method", Field::kHttpMethod}, {"http.useragent", Field::kUserAgent},
      {"http.clientip", Field::kClientIp}, {"user", Field::kUser}, {"ok", Field::kOk}, {"error", Field::kError},
      {"fault", Field::kFault}, {"throttle", Field::kThrottle}, {"partial", Field::kPartial}};
  for (const auto& [name, f] : kFields)
    if (w == name) return f;
  if (w.rfind("annotation.", 0) == 0 && w.size() > 11) return Field::kAnnotation;
  return std::nullopt;
}

bool IsBoolField(Field f) {
  return f == Field::kOk || f == Field::kError || f == Field::kFault || f == Field::kThrottle || f == Field::kPartial;
}

Value Read(const store::TraceSummaryRow& t, Field f) {
  switch (f) {
    case Field::kResponseTime:
      if (t.root_start && t.root_end) return *t.root_end - *t.root_start;
      return std::monostate{};
    case Field::kDuration: return t.end_time - t.start_time;
    case Field::kHttpStatus: return t.http_status ? Value(static_cast<double>(*t.http_status)) : Value();
    case Field::kHttpUrl: return t.http_url;
    case Field::kHttpMethod: return t.http_method;
    case Field::kUserAgent: return t.user_agent;
    case Field::kClientIp: return t.client_ip;
    case Field::kUser: return t.user;
    case Field::kOk: return !t.has_error && !t.has_fault && !t.has_throttle;
    case Field::kError: return t.has_error;
    case Field::kFault: return t.has_fault;
    case Field::kThrottle: return t.has_throttle;
    case Field::kPartial: return t.is_partial;
    case Field::kAnnotation: break;
  }
  return std::monostate{};
}

struct Compare final : FilterNode {
  Field field;
  std::string annotation_key;
  std::string op;  // "", "=", "!=", "<", ..., "contains", "beginswith", "endswith"
  Value rhs;

  bool Test(const Value& lhs) const {
    if (std::holds_alternative<std::monostate>(lhs)) return false;
    if (auto b = std::get_if<bool>(&lhs)) {
      if (op.empty()) return *b;
      const bool* r = std::get_if<bool>(&rhs);
      if (!r) return false;
      return op == "=" ? *b == *r : op == "!=" ? *b != *r : false;
    }
    if (auto d = std::get_if<double>(&lhs)) {
      const double* r = std::get_if<double>(&rhs);
      return r && CompareNumbers(*d, op, *r);
    }
    const auto& s = std::get<std::string>(lhs);
    const std::string* r = std::get_if<std::string>(&rhs);
    return r && CompareStrings(s, op, *r);
  }

  Condition Necessary(const FlagScope* scope) const override {
    if (field == Field::kAnnotation) return AnnotationCondition();
    if (field == Field::kHttpUrl) return UrlCondition();
    const auto flag = field == Field::kError   ? store::IndexCondition::Flag::kError
                      : field == Field::kFault ? store::IndexCondition::Flag::kFault
                      : field == Field::kThrottle ? store::IndexCondition::Flag::kThrottle
                                                  : store::IndexCondition::Flag::kNone;
    const bool* b = std::get_if<bool>(&rhs);
    const bool wants_set = op.empty() || (b && ((op == "=" && *b) || (op == "!=" && !*b)));
    if (flag == store::IndexCondition::Flag::kNone || !wants_set) return std::nullopt;
    if (scope == nullptr) return store::IndexCondition::TraceFlag(flag);
    if (scope->name.empty()) return std::nullopt;  // the store finds services by name
    return store::IndexCondition::Service(scope->name, scope->type, flag);
  }

  // annotation.k = v: a value of k equal to v (any service). Other operators: none.
  Condition AnnotationCondition() const {
    if (op != "=") return std::nullopt;
    if (const auto* s = std::get_if<std::string>(&rhs)) {
      if (s->find('\0') != std::string::npos) return std::nullopt;  // SQLite's JSON text stops at NUL
      return store::IndexCondition::Annotation(annotation_key, *s);
    }
    if (const auto* d = std::get_if<double>(&rhs)) return store::IndexCondition::Annotation(annotation_key, *d);
    if (const auto* b = std::get_if<bool>(&rhs)) return store::IndexCondition::Annotation(annotation_key, *b);
    return std::nullopt;
  }

  // http.url = u, or CONTAINS / BEGINSWITH / ENDSWITH a text of 3 characters or more (the
  // trigram index cannot look for less).
  Condition UrlCondition() const {
    const auto* s = std::get_if<std::string>(&rhs);
    if (s == nullptr) return std::nullopt;
    if (op == "=") return store::IndexCondition::UrlEquals(*s);
    if (op != "contains" && op != "beginswith" && op != "endswith") return std::nullopt;
    size_t chars = 0;
    for (unsigned char c : *s) chars += (c & 0xC0) != 0x80;
    if (chars < 3) return std::nullopt;
    return store::IndexCondition::UrlContains(*s);
  }

  bool Eval(const store::TraceSummaryRow& t) const override {
    if (field != Field::kAnnotation) return Test(Read(t, field));
    // An annotation matches if any of its values (any service) satisfies the comparison.
    for (const auto& a : t.annotations) {
      if (a.key != annotation_key) continue;
      nlohmann::json v = nlohmann::json::parse(a.value_json, nullptr, false);
      Value lhs;
      if (v.is_string()) lhs = v.get<std::string>();
      else if (v.is_boolean()) lhs = v.get<bool>();
      else if (v.is_number()) lhs = v.get<double>();
      if (Test(lhs)) return true;
    }
    return false;
  }
};

// service(...) / id(...): the trace went through a matching service; edge(a, b): through both.
struct ServiceMatch final : FilterNode {
  std::vector<std::pair<std::string, std::string>> wanted;  // (name, type) — empty type = any
  bool edge = false;
  NodePtr inner;
  // Each named service is in the trace; the sub-filter's flags are the last one's (edge: the callee).
  Condition Necessary(const FlagScope* scope) const override {
    (void)scope;
    Condition all;
    for (const auto& [name, type] : wanted)
      if (!name.empty()) all = BothOf(std::move(all), store::IndexCondition::Service(name, type));
    if (!inner) return all;
    const FlagScope mine{wanted.back().first, wanted.back().second};
    return BothOf(std::move(all), inner->Necessary(&mine));
  }

  bool Eval(const store::TraceSummaryRow& t) const override {
    auto matches = [&](size_t i, const std::pair<std::string, std::string>& want) {
      return (want.first.empty() || t.services[i].first == want.first) && ServiceTypeMatches(want.second, t.services[i].second);
    };
    for (const auto& want : wanted) {
      bool found = false;
      for (size_t i = 0; i < t.services.size() && !found; ++i) found = matches(i, want);
      if (!found) return false;
    }
    if (!inner) return true;
    // The sub-filter sees the matched service's own error/fault/throttle (for edge(a, b): the callee's,
    // b); every other keyword still reads the trace. A store without per-service flags (older data)
    // leaves the trace's.
    if (t.service_flags.size() != t.services.size()) return inner->Eval(t);
    for (size_t i = 0; i < t.services.size(); ++i) {
      if (!matches(i, wanted.back())) continue;
      store::TraceSummaryRow view = t;
      view.has_error = t.service_flags[i].error;
      view.has_fault = t.service_flags[i].fault;
      view.has_throttle = t.service_flags[i].throttle;
      if (inner->Eval(view)) return true;
    }
    return false;
  }
};

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Result<NodePtr> Run() {
    auto n = ParseOr();
    if (!n) return n;
    if (Peek().kind != Tok::kEnd) return Fail("unexpected \"" + Peek().text + "\"");
    return n;
  }

 private:
  const Token& Peek() const { return t_[i_]; }
  const Token& Next() { return t_[i_ < t_.size() - 1 ? i_++ : i_]; }
  bool IsWord(const char* w) const { return Peek().kind == Tok::kWord && Peek().text == w; }
  Error Fail(const std::string& what) const {
    return Error::InvalidArgument("filter expression: " + what + " at position " + std::to_string(Peek().pos + 1));
  }

  Result<NodePtr> ParseOr() {
    auto left = ParseAnd();
    if (!left) return left;
    NodePtr n = *left;
    while (IsWord("or")) {
      Next();
      auto right = ParseAnd();
      if (!right) return right;
      n = std::make_shared<Or>(n, *right);
    }
    return n;
  }
  Result<NodePtr> ParseAnd() {
    auto left = ParseUnary();
    if (!left) return left;
    NodePtr n = *left;
    while (IsWord("and")) {
      Next();
      auto right = ParseUnary();
      if (!right) return right;
      n = std::make_shared<And>(n, *right);
    }
    return n;
  }
  Result<NodePtr> ParseUnary() {
    if (IsWord("not") || Peek().kind == Tok::kBang) {
      Next();
      auto inner = ParseUnary();
      if (!inner) return inner;
      return NodePtr(std::make_shared<Not>(*inner));
    }
    if (Peek().kind == Tok::kLParen) {
      Next();
      auto inner = ParseOr();
      if (!inner) return inner;
      if (Peek().kind != Tok::kRParen) return Fail("expected ')'");
      Next();
      return inner;
    }
    return ParsePrimary();
  }

  Result<Value> ParseLiteral() {
    const Token tok = Next();
    if (tok.kind == Tok::kString) return Value(tok.text);
    if (tok.kind == Tok::kNumber) return Value(tok.number);
    if (tok.kind == Tok::kWord && (tok.text == "true" || tok.text == "false")) return Value(tok.text == "true");
    --i_;
    return Fail("expected a value");
  }

  Result<NodePtr> ParsePrimary() {
    if (Peek().kind != Tok::kWord) return Fail(Peek().kind == Tok::kEnd ? "unexpected end" : "expected a keyword");
    const std::string word = Next().text;
    if (word == "service" || word == "edge" || word == "id") return ParseComplex(word);
    if (word == "true" || word == "false") return NodePtr(std::make_shared<Const>(word == "true"));
    auto field = FieldOf(word);
    if (!field) {
      --i_;
      return Fail("unknown keyword \"" + word + "\"");
    }
    auto node = std::make_shared<Compare>();
    node->field = *field;
    if (*field == Field::kAnnotation) node->annotation_key = word.substr(11);
    std::string op;
    if (Peek().kind == Tok::kOp) {
      op = Next().text;
    } else if (Peek().kind == Tok::kWord &&
               (Peek().text == "contains" || Peek().text == "beginswith" || Peek().text == "endswith")) {
      op = Next().text;
    }
    if (op.empty()) {
      if (!IsBoolField(*field) && *field != Field::kAnnotation) return Fail("expected an operator after " + word);
      node->op = "";
      if (*field == Field::kAnnotation) {  // bare annotation.x: present and true
        node->op = "=";
        node->rhs = true;
      }
      return NodePtr(node);
    }
    node->op = op;
    auto v = ParseLiteral();
    if (!v) return v.error();
    node->rhs = *v;
    if (IsBoolField(*field) && !std::holds_alternative<bool>(node->rhs)) return Fail(word + " compares with true or false");
    const bool numeric = *field == Field::kResponseTime || *field == Field::kDuration || *field == Field::kHttpStatus;
    if (numeric && !std::holds_alternative<double>(node->rhs)) return Fail(word + " compares with a number");
    if (!numeric && !IsBoolField(*field) && *field != Field::kAnnotation && !std::holds_alternative<std::string>(node->rhs))
      return Fail(word + " compares with a string");
    const bool text_op = op == "contains" || op == "beginswith" || op == "endswith";
    if (text_op && !std::holds_alternative<std::string>(node->rhs)) return Fail(op + " needs a string");
    return NodePtr(node);
  }

  // service("name"), service(id(name: "n", type: "t")), id(name: "n"), edge("a", "b"), then an
  // optional { sub-filter }.
  Result<NodePtr> ParseComplex(const std::string& word) {
    auto node = std::make_shared<ServiceMatch>();
    node->edge = word == "edge";
    if (word == "id") {
      auto id = ParseIdArgs();
      if (!id) return id.error();
      node->wanted.push_back(*id);
    } else {
      if (Peek().kind != Tok::kLParen) return Fail("expected '(' after " + word);
      Next();
      const int want = word == "edge" ? 2 : 1;
      for (int k = 0; k < want; ++k) {
        if (k > 0) {
          if (Peek().kind != Tok::kComma) return Fail("edge() takes two services");
          Next();
        }
        if (Peek().kind == Tok::kString) {
          node->wanted.emplace_back(Next().text, "");
        } else if (IsWord("id")) {
          Next();
          auto id = ParseIdArgs();
          if (!id) return id.error();
          node->wanted.push_back(*id);
        } else if (word == "service" && Peek().kind == Tok::kRParen) {
          node->wanted.emplace_back("", "");
        } else {
          return Fail("expected a service name");
        }
      }
      if (Peek().kind != Tok::kRParen) return Fail("expected ')'");
      Next();
    }
    if (Peek().kind == Tok::kLBrace) {
      Next();
      auto inner = ParseOr();
      if (!inner) return inner;
      if (Peek().kind != Tok::kRBrace) return Fail("expected '}'");
      Next();
      node->inner = *inner;
    }
    return NodePtr(node);
  }

  Result<std::pair<std::string, std::string>> ParseIdArgs() {
    if (Peek().kind != Tok::kLParen) return Fail("expected '(' after id");
    Next();
    std::pair<std::string, std::string> id;
    while (Peek().kind != Tok::kRParen) {
      if (Peek().kind != Tok::kWord) return Fail("expected name: or type:");
      const std::string key = Next().text;
      if (Peek().kind != Tok::kColon) return Fail("expected ':' after " + key);
      Next();
      if (Peek().kind != Tok::kString) return Fail("expected a string");
      const std::string value = Next().text;
      if (key == "name") id.first = value;
      else if (key == "type") id.second = value;
      else return Fail("id() takes name and type");
      if (Peek().kind == Tok::kComma) Next();
    }
    Next();
    return id;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
};

}  // namespace

Filter::Filter() = default;
Filter::~Filter() = default;
Filter::Filter(Filter&&) noexcept = default;
Filter& Filter::operator=(Filter&&) noexcept = default;

bool ServiceTypeMatches(std::string_view wanted, std::string_view origin) {
  return wanted.empty() || wanted == origin || (origin.empty() && wanted == kPlainServiceType);
}

Result<Filter> Filter::Parse(std::string_view text) {
  Filter f;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return f;
  if (text.size() > 4096) return Error::InvalidArgument("filter expression longer than 4096 characters");
  auto toks = Lex(text);
  if (!toks) return toks.error();
  // Nesting is bounded by length; depth guard against stack exhaustion on "((((((...".
  int depth = 0, max_depth = 0;
  for (const auto& t : *toks) {
    if (t.kind == Tok::kLParen || t.kind == Tok::kLBrace) max_depth = std::max(max_depth, ++depth);
    if (t.kind == Tok::kRParen || t.kind == Tok::kRBrace) --depth;
  }
  size_t bangs = 0;
  for (const auto& t : *toks) bangs += t.kind == Tok::kBang || (t.kind == Tok::kWord && t.text == "not");
  if (max_depth > 64 || bangs > 256) return Error::InvalidArgument("filter expression nested too deeply");
  Parser p(std::move(*toks));
  auto root = p.Run();
  if (!root) return root.error();
  f.root_ = *root;
  return f;
}

bool Filter::Matches(const store::TraceSummaryRow& trace) const { return !root_ || root_->Eval(trace); }

namespace {

// The store plans a condition as nested SQL, about one subquery per level, and SQLite's parser
// refuses deep nesting ("parser stack overflow": 30 ORed URL tests answered 500; found with
// fuzz_api_request's harness). So chains ("a OR b OR c", a left-deep tree) become one n-ary node, and the
// rest is bounded where that keeps the condition necessary: past kMaxConditionDepth levels or
// kMaxConditionParts parts, an AND drops parts (what is left is still implied), an OR gives up
// narrowing (nullopt: the store scans the range and Matches() decides, as for NOT).
constexpr int kMaxConditionDepth = 4;
constexpr size_t kMaxConditionParts = 64;

void Flatten(store::IndexCondition c, store::IndexCondition::Kind kind, std::vector<store::IndexCondition>& out) {
  if (c.kind != kind) {
    out.push_back(std::move(c));
    return;
  }
  for (auto& part : c.all) Flatten(std::move(part), kind, out);
}

Condition Bounded(store::IndexCondition c, int depth) {
  using Kind = store::IndexCondition::Kind;
  const Kind kind = c.kind;
  if (kind != Kind::kAnd && kind != Kind::kOr) return c;
  if (depth >= kMaxConditionDepth) return std::nullopt;
  std::vector<store::IndexCondition> flat, parts;
  Flatten(std::move(c), kind, flat);
  for (auto& part : flat) {
    Condition b = Bounded(std::move(part), depth + 1);
    if (b && parts.size() < kMaxConditionParts) parts.push_back(std::move(*b));
    else if (kind == Kind::kOr) return std::nullopt;  // a part that may match any trace
  }
  if (parts.empty()) return std::nullopt;
  return kind == Kind::kAnd ? store::IndexCondition::And(std::move(parts)) : store::IndexCondition::Or(std::move(parts));
}

}  // namespace

std::shared_ptr<const store::IndexCondition> Filter::NecessaryCondition() const {
  if (!root_) return nullptr;
  auto c = root_->Necessary(nullptr);
  if (c) c = Bounded(std::move(*c), 0);
  if (!c) return nullptr;
  return std::make_shared<const store::IndexCondition>(std::move(*c));
}

Result<EntitySelector> ParseEntitySelector(std::string_view text) {
  EntitySelector sel;
  auto f = Filter::Parse(text);
  if (!f) return f.error();
  if (f->IsEmpty()) return sel;
  const auto* match = dynamic_cast<const ServiceMatch*>(f->root_.get());
  if (match == nullptr || match->inner != nullptr)
    return Error::InvalidArgument("EntitySelectorExpression: expected service(...), id(...) or edge(..., ...)");
  sel.edge = match->edge;
  sel.ids = match->wanted;
  return sel;
}

}  // namespace xrayd::api
