// vectord console
