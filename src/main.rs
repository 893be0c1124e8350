fn main() {
    println!("prodserver: under construction");
}
