{
  "targets": [
    {
      "target_name": "walbuf",
      "type": "loadable_module",
      "sources": ["walbuf.c"],
      "include_dirs": ["../node_modules/better-sqlite3/deps/sqlite3"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "chunkio",
      "sources": ["chunkio.c", "md5lanes.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
