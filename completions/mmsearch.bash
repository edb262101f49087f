# bash completion for mmsearch: one `mmsearch` process per Tab.
_mmsearch_complete() {
    local words="${COMP_WORDS[*]:0:COMP_CWORD+1}" line  # joined by spaces (the usual IFS)
    local IFS=$'\n'
    local -a found
    found=($(COMP_WORDS="$words" COMP_CWORD=$COMP_CWORD _MMSEARCH_COMPLETE=bash mmsearch \
        2>/dev/null))
    COMPREPLY=()
    for line in "${found[@]}"; do
        [[ $line == __files__ ]] && continue  # empty: readline completes the path
        COMPREPLY+=("$line")
    done
}
complete -o default -F _mmsearch_complete mmsearch
