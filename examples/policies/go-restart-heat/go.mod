// The module name is the one the generated bindings import themselves by.
module wit_component

go 1.25

require go.bytecodealliance.org/pkg v0.4.0

// The bindings' runtime package ships inside wit-bindgen-go (crates.io); the build
// script points this at it, since the Go module proxy does not serve it.
replace go.bytecodealliance.org/pkg => ./.runtime
