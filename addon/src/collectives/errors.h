// The one exception type of the collectives: its message is what every rank's promise rejects with.
#pragma once
#include <stdexcept>
#include <string>

namespace dtrain {

class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace dtrain
