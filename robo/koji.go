package robo

// dialKoji opens a logged-in Koji session; nil until the Koji XML-RPC
// client is in the tree, and [tag_sign] is refused meanwhile.
var dialKoji KojiDialer
