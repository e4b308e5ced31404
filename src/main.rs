#[global_allocator]
static ALLOCATOR: write_perfetto::memory::Allocator = write_perfetto::memory::Allocator;

fn main() {
    write_perfetto::memory::single_arena();
    std::process::exit(write_perfetto::cli::main());
}
