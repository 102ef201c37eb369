{
  "targets": [
    {
      "target_name": "caswarm_tree",
      "sources": ["tree.c"],
      "cflags": ["-O2", "-Wall", "-Wno-unused-parameter"]
    }
  ]
}
