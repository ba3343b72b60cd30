package lua

import "testing"

// BenchmarkNewVMAndRun measures what every script run pays: a fresh VM
// with its libraries, and a tiny script.
func BenchmarkNewVMAndRun(b *testing.B) {
	proto, err := Compile([]byte("return 1"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		vm := New(1, InstructionBudget)
		if _, err := vm.Run(proto); err != nil {
			b.Fatal(err)
		}
		vm.Close()
	}
}
