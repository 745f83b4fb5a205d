#include "json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dtrain::agent {

namespace {
const Json kNull;

void appendUtf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// The UTF-8 sequence at s[i]: returns its length and sets `valid`. An invalid one is its maximal subpart
// (a lead byte and the continuation bytes that fit it so far), which becomes one U+FFFD, as Node's
// decoder (WHATWG) replaces it.
size_t utf8Step(const std::string& s, size_t i, bool& valid) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned c = b(i);
  valid = true;
  if (c < 0x80) return 1;
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF)
    need = 1;
  else if (c >= 0xE0 && c <= 0xEF)
    need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4)
    need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else
    return valid = false, 1;
  for (size_t k = 1; k <= need; k++) {
    if (i + k >= s.size()) return valid = false, k;
    unsigned x = b(i + k);
    if (k == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) return valid = false, k;
  }
  return need + 1;
}
}  // namespace

class JsonParser {
 public:
  explicit JsonParser(const std::string& t) : t_(t) {}

  bool document(Json& out) {
    ws();
    if (!value(out, 0)) return false;
    ws();
    if (p_ != t_.size()) return fail("unexpected text after the value");
    return true;
  }
  std::string error;

 private:
  const std::string& t_;
  size_t p_ = 0;

  bool fail(const char* what) {
    if (error.empty()) error = std::string(what) + " at offset " + std::to_string(p_);
    return false;
  }
  void ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) p_++;
  }
  bool literal(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (t_.compare(p_, n, word) != 0) return fail("invalid literal");
    p_ += n;
    return true;
  }
  bool value(Json& v, int depth) {
    if (depth > 64) return fail("nesting too deep");
    if (p_ >= t_.size()) return fail("unexpected end");
    char c = t_[p_];
    if (c == '{') return object(v, depth);
    if (c == '[') return array(v, depth);
    if (c == '"') {
      v.type_ = Json::Type::String;
      return string(v.str_);
    }
    if (c == 't') {
      v.type_ = Json::Type::Bool;
      v.bool_ = true;
      return literal("true");
    }
    if (c == 'f') {
      v.type_ = Json::Type::Bool;
      return literal("false");
    }
    if (c == 'n') return literal("null");
    return number(v);
  }
  bool number(Json& v) {
    size_t start = p_;
    if (p_ < t_.size() && t_[p_] == '-') p_++;
    if (p_ >= t_.size() || !isdigit(static_cast<unsigned char>(t_[p_]))) return fail("invalid value");
    while (p_ < t_.size() && (isdigit(static_cast<unsigned char>(t_[p_])) || t_[p_] == '.' || t_[p_] == 'e' ||
                              t_[p_] == 'E' || t_[p_] == '+' || t_[p_] == '-'))
      p_++;
    std::string text = t_.substr(start, p_ - start);
    char* end = nullptr;
    v.num_ = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) return fail("invalid number");
    v.type_ = Json::Type::Number;
    return true;
  }
  bool hex4(unsigned& cp) {
    if (p_ + 4 > t_.size()) return fail("truncated \\u escape");
    cp = 0;
    for (int i = 0; i < 4; i++) {
      char c = t_[p_++];
      cp <<= 4;
      if (c >= '0' && c <= '9')
        cp |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f')
        cp |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        cp |= unsigned(c - 'A' + 10);
      else
        return fail("invalid \\u escape");
    }
    return true;
  }
  bool string(std::string& out) {
    p_++;  // opening quote
    for (;;) {
      if (p_ >= t_.size()) return fail("unterminated string");
      char c = t_[p_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (static_cast<unsigned char>(c) >= 0x80) {
        // Text is read as Node reads stdin (decoded as UTF-8): invalid bytes become U+FFFD.
        bool valid;
        size_t n = utf8Step(t_, p_ - 1, valid);
        if (valid)
          out.append(t_, p_ - 1, n);
        else
          out += "\xEF\xBF\xBD";
        p_ += n - 1;
        continue;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ >= t_.size()) return fail("unterminated escape");
      char e = t_[p_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF && t_.compare(p_, 2, "\\u") == 0) {
            size_t save = p_;
            p_ += 2;
            unsigned lo = 0;
            if (!hex4(lo)) return false;
            if (lo >= 0xDC00 && lo <= 0xDFFF)
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else
              p_ = save, cp = 0xFFFD;
          } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;  // a lone surrogate has no UTF-8 form
          }
          appendUtf8(out, cp);
          break;
        }
        default:
          return fail("invalid escape");
      }
    }
  }
  bool array(Json& v, int depth) {
    v.type_ = Json::Type::Array;
    p_++;
    ws();
    if (p_ < t_.size() && t_[p_] == ']') return p_++, true;
    for (;;) {
      v.items_.emplace_back();
      ws();
      if (!value(v.items_.back(), depth + 1)) return false;
      ws();
      if (p_ >= t_.size()) return fail("unterminated array");
      if (t_[p_] == ',') {
        p_++;
        continue;
      }
      if (t_[p_] == ']') return p_++, true;
      return fail("expected , or ]");
    }
  }
  bool object(Json& v, int depth) {
    v.type_ = Json::Type::Object;
    p_++;
    ws();
    if (p_ < t_.size() && t_[p_] == '}') return p_++, true;
    for (;;) {
      ws();
      if (p_ >= t_.size() || t_[p_] != '"') return fail("expected a member name");
      std::string key;
      if (!string(key)) return false;
      ws();
      if (p_ >= t_.size() || t_[p_] != ':') return fail("expected :");
      p_++;
      ws();
      Json member;
      if (!value(member, depth + 1)) return false;
      // A repeated name keeps the last value, as JSON.parse does.
      bool replaced = false;
      for (auto& m : v.members_)
        if (m.first == key) m.second = std::move(member), replaced = true;
      if (!replaced) v.members_.emplace_back(std::move(key), std::move(member));
      ws();
      if (p_ >= t_.size()) return fail("unterminated object");
      if (t_[p_] == ',') {
        p_++;
        continue;
      }
      if (t_[p_] == '}') return p_++, true;
      return fail("expected , or }");
    }
  }
};

Json Json::parse(const std::string& text, std::string& error) {
  Json out;
  JsonParser p(text);
  if (!p.document(out)) {
    error = p.error;
    return Json();
  }
  error.clear();
  return out;
}

const Json& Json::operator[](const std::string& key) const {
  for (const auto& m : members_)
    if (m.first == key) return m.second;
  return kNull;
}

bool Json::has(const std::string& key) const {
  for (const auto& m : members_)
    if (m.first == key) return true;
  return false;
}

std::string Json::dump() const {
  switch (type_) {
    case Type::Null:
      return "null";
    case Type::Bool:
      return bool_ ? "true" : "false";
    case Type::Number: {
      if (std::isfinite(num_) && num_ == std::floor(num_) && std::fabs(num_) < 9e15)
        return dtrain::agent::num(static_cast<long long>(num_));
      if (!std::isfinite(num_)) return "null";
      // The shortest text that reads back as the same double, as JSON.stringify writes it.
      char buf[32];
      for (int precision = 1; precision <= 17; precision++) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, num_);
        if (std::strtod(buf, nullptr) == num_) break;
      }
      return buf;
    }
    case Type::String:
      return quote(str_);
    case Type::Array: {
      std::string out = "[";
      for (size_t i = 0; i < items_.size(); i++) out += (i ? "," : "") + items_[i].dump();
      return out + "]";
    }
    case Type::Object: {
      std::string out = "{";
      for (size_t i = 0; i < members_.size(); i++)
        out += (i ? "," : "") + quote(members_[i].first) + ":" + members_[i].second.dump();
      return out + "}";
    }
  }
  return "null";
}

std::string quote(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      bool valid;
      size_t n = utf8Step(s, i, valid);
      if (valid)
        out.append(s, i, n);
      else
        out += "\xEF\xBF\xBD";
      i += n;
      continue;
    }
    i++;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
  return out;
}

std::string num(long long v) { return std::to_string(v); }

}  // namespace dtrain::agent
