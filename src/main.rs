// glibc's malloc took a fifth of the daemon's CPU on the real path (every event is a few dozen
// short-lived allocations, freed on other threads than made them); jemalloc's thread caches
// cut the CPU per event by about 40 % (docs/PERFORMANCE.md, docs/DEPENDENCIES.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    ongwatch::cli::main()
}
