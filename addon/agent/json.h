// The little JSON the native agent needs: parsing the controller's hello, spec and commands, and writing
// its own hello, events and output records. Values keep object members in their order; numbers are doubles
// (every number in the agent contract is a small integer).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dtrain::agent {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;
  static Json parse(const std::string& text, std::string& error);

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::Null; }
  bool isString() const { return type_ == Type::String; }
  bool isNumber() const { return type_ == Type::Number; }
  bool isArray() const { return type_ == Type::Array; }
  bool isObject() const { return type_ == Type::Object; }
  bool isBool() const { return type_ == Type::Bool; }

  const std::string& str() const { return str_; }
  double num() const { return num_; }
  bool boolean() const { return bool_; }
  const std::vector<Json>& items() const { return items_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }
  // The member named `key`, or a null value when there is none (or this is not an object).
  const Json& operator[](const std::string& key) const;
  bool has(const std::string& key) const;

  // Compact JSON text, as JSON.stringify writes it.
  std::string dump() const;

 private:
  friend class JsonParser;
  Type type_ = Type::Null;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

// `s` as a JSON string literal. Bytes that are not valid UTF-8 become U+FFFD, as Node's toString() does.
std::string quote(const std::string& s);
// A number as JSON.stringify writes an integer (the only numbers the agent writes).
std::string num(long long v);

}  // namespace dtrain::agent
