# fish completion for mmsearch: one `mmsearch` process per Tab.
function __mmsearch_complete
    set -l words (commandline -opc) (commandline -ct)
    set -l current (commandline -ct)
    for line in (env COMP_WORDS="$words" COMP_CWORD=(math (count $words) - 1) \
            _MMSEARCH_COMPLETE=fish mmsearch 2>/dev/null)
        if test "$line" = __files__
            __fish_complete_path $current
        else
            echo $line
        end
    end
end
complete -c mmsearch -f -a '(__mmsearch_complete)'
