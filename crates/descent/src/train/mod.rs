pub struct Compiled;
