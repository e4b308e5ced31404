fn main() {
    write_perfetto::memory::single_arena();
    std::process::exit(write_perfetto::cli::main());
}
