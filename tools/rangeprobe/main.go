// Command rangeprobe is a prototype for docs/capture.md: can Linux tell
// vigil which byte ranges a write touched? It attaches a BPF program to
// the syscalls/sys_enter_pwrite64 tracepoint that reports the fd, offset
// and length of every pwrite64 of this process into a ring buffer, writes
// a file 10,000 times, and counts the ranges reported and the cost per
// write. The program is built with the loader's assembler: no clang.
//
// It is its own module so that vigil does not depend on the loader.
// Run as root, with tracefs mounted:
//
//	mount -t tracefs nodev /sys/kernel/tracing   # if not mounted
//	go run . /tmp/rangeprobe.bin
//
// On the machine it was written on (Linux 6.18, no kprobes) fentry
// programs on vfs_write were refused (EPERM at load) while tracepoint
// programs load and attach: see docs/capture.md.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

func main() {
	f, err := os.OpenFile(os.Args[1], os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		panic(err)
	}
	f.Truncate(4 << 20)
	rb, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 20})
	if err != nil {
		panic(err)
	}
	defer rb.Close()
	tgid := int64(os.Getpid())
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(asm.R0, 32),
		asm.LoadImm(asm.R1, tgid, asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, "out"),
		asm.LoadMem(asm.R1, asm.R6, 16, asm.DWord), // fd
		asm.StoreMem(asm.RFP, -24, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R6, 40, asm.DWord), // pos
		asm.StoreMem(asm.RFP, -16, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R6, 32, asm.DWord), // count
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, rb.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, -24),
		asm.Mov.Imm(asm.R3, 24),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.TracePoint, Instructions: insns, License: "GPL"})
	if err != nil {
		fmt.Printf("load: %+v\n", err)
		os.Exit(1)
	}
	defer prog.Close()
	l, err := link.Tracepoint("syscalls", "sys_enter_pwrite64", prog, nil)
	if err != nil {
		fmt.Println("attach:", err)
		os.Exit(1)
	}
	defer l.Close()
	rd, err := ringbuf.NewReader(rb)
	if err != nil {
		panic(err)
	}
	defer rd.Close()

	buf := make([]byte, 64<<10)
	want := map[[3]uint64]bool{}
	const n = 10000
	start := time.Now()
	for i := 0; i < n; i++ {
		off := int64((i*7)%64) << 16
		f.WriteAt(buf[:4096], off)
		want[[3]uint64{uint64(f.Fd()), uint64(off), 4096}] = true
	}
	with := time.Since(start)
	got := 0
	rd.SetDeadline(time.Now().Add(time.Second))
	for {
		rec, err := rd.Read()
		if err != nil {
			break
		}
		k := [3]uint64{binary.LittleEndian.Uint64(rec.RawSample[0:]), binary.LittleEndian.Uint64(rec.RawSample[8:]), binary.LittleEndian.Uint64(rec.RawSample[16:])}
		if want[k] {
			got++
		}
	}
	l.Close()
	start = time.Now()
	for i := 0; i < n; i++ {
		f.WriteAt(buf[:4096], int64((i*7)%64)<<16)
	}
	without := time.Since(start)
	fmt.Printf("%d of %d pwrite64 calls reported with fd, offset and length; 4 KiB pwrite: %v each with the program attached, %v without\n",
		got, n, with/n, without/n)
}
