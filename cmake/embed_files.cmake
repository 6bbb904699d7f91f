# Turns a set of files into one C source holding a table of them, for the
# web console (api/console/, served at /console/ by api/console.c): the
# files and the binary cannot drift, and nothing is read from disk at run
# time. The sibling of embed.cmake, which embeds one file.
#
# The output defines, with struct console_file from console.h,
#   const struct console_file NAME[] = {{"index.html", bytes, len}, ...};
#   const size_t NAME_count;
# Each file's bytes are an unsigned char array with a NUL after the last
# byte (not counted in len).
#
# Usage: cmake -DDIR=dir -DFILES=a:b/c:d -DOUT=file.c -DNAME=symbol -P embed_files.cmake
# (FILES: paths relative to DIR, separated by ':' so that the list survives
# the build tool's command line.)
if(NOT DEFINED DIR OR NOT DEFINED FILES OR NOT DEFINED OUT OR NOT DEFINED NAME)
  message(FATAL_ERROR "embed_files.cmake needs -DDIR, -DFILES, -DOUT and -DNAME")
endif()
string(REPLACE ":" ";" files "${FILES}")
set(arrays "")
set(table "")
set(i 0)
foreach(f IN LISTS files)
  if(NOT EXISTS "${DIR}/${f}")
    message(FATAL_ERROR "embed_files.cmake: ${DIR}/${f} does not exist")
  endif()
  file(READ "${DIR}/${f}" hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR len "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
  string(APPEND arrays "/* ${f} */\nstatic const unsigned char file_${i}[] = {\n${bytes}0x00};\n")
  string(APPEND table "    {\"${f}\", file_${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE "${OUT}"
  "/* generated from ${DIR} by cmake/embed_files.cmake */\n#include \"console.h\"\n\n"
  "${arrays}\nconst struct console_file ${NAME}[] = {\n${table}};\n"
  "const size_t ${NAME}_count = ${i};\n")
