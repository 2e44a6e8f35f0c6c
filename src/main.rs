use std::process::ExitCode;

// mimalloc keeps freed large blocks for reuse, where glibc unmaps or trims them (attention
// scores, logits and FFN activations are MBs each and re-allocated every layer and step), so
// that each reuse page-faults and zeroes the pages again. Measured on this 2-core VM, 1
// thread: distilbart 8 x 512 int8 encoder 9.6 -> 7.0 s; opus-mt greedy +10% f32, +11% q8;
// peak RSS +5-35 MB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tomtat::cli::main()
}
