fn main() -> std::process::ExitCode {
    ongwatch::cli::main()
}
