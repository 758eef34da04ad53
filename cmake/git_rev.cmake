# Writes OUT, a header defining MEMRING_GIT_REV: the short hash of the git
# checkout at SRC, or "unknown" outside one (a tarball, even one unpacked
# inside another repository) or without GIT. Run at every build; OUT is
# rewritten only when the hash changed, so that nothing else recompiles.
set(rev unknown)
if(GIT)
    execute_process(COMMAND ${GIT} rev-parse --show-toplevel --short HEAD
                    WORKING_DIRECTORY ${SRC} RESULT_VARIABLE rc
                    OUTPUT_VARIABLE out OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET)
    if(rc EQUAL 0)
        string(REPLACE "\n" ";" out "${out}")
        list(GET out 0 top)
        list(GET out 1 hash)
        get_filename_component(top "${top}" REALPATH)
        get_filename_component(src "${SRC}" REALPATH)
        if(top STREQUAL src)
            set(rev ${hash})
        endif()
    endif()
endif()
set(text "#define MEMRING_GIT_REV \"${rev}\"\n")
set(old "")
if(EXISTS ${OUT})
    file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
    file(WRITE ${OUT} "${text}")
endif()
