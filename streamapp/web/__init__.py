"""HTTP endpoints served by each worker's Faust web server."""
