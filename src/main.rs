fn main() {
    std::process::exit(write_perfetto::cli::main());
}
