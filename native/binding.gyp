{
  "targets": [
    {
      "target_name": "caswarm_tree",
      "sources": ["tree.c"],
      "cflags": ["-O2", "-Wall", "-Wno-unused-parameter"]
    },
    {
      "target_name": "caswarm_chunker",
      "sources": ["chunker.c"],
      "cflags": ["-O3", "-falign-loops=32", "-Wall", "-Wno-unused-parameter"]
    },
    {
      "target_name": "caswarm_io",
      "sources": ["io.c"],
      "cflags": ["-O2", "-Wall", "-Wno-unused-parameter"]
    }
  ]
}
