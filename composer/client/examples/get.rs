fn main() {
    let url = std::env::args().nth(1).unwrap();
    let client = composer_client::Client::new(Default::default());
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let n = client.get_bytes(&url).unwrap().len();
        eprintln!("{n} bytes in {:?}", t.elapsed());
    }
}
