// Errors raised by native code. The binding turns each kind into the matching JS error class.
#pragma once
#include <stdexcept>
#include <string>

namespace qwenlong {

enum class ErrorKind { Type, Range, Runtime };

struct Error : std::runtime_error {
  ErrorKind kind;
  Error(ErrorKind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

[[noreturn]] inline void throw_type(const std::string& msg) { throw Error(ErrorKind::Type, msg); }
[[noreturn]] inline void throw_range(const std::string& msg) { throw Error(ErrorKind::Range, msg); }
[[noreturn]] inline void throw_runtime(const std::string& msg) { throw Error(ErrorKind::Runtime, msg); }

}  // namespace qwenlong
