// Placeholder until the config schema lands: compiles the JSON Schema to standalone validation code.
