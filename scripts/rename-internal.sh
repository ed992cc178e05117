#!/usr/bin/env bash
# scripts/rename-internal.sh - give the library's internal functions their
# layer__ names (docs/api.md, "Names").
#
# usage: scripts/rename-internal.sh            rename, in the work tree
#        scripts/rename-internal.sh --list     print the OLD NEW table
#        scripts/rename-internal.sh --check DIR list the global symbols of
#                DIR/librpctls.a that are neither exported (in
#                tests/exported_symbols.txt) nor named layer__ (exit 1 if any)
#
# A global function that include/rpctls/*.h does not declare is internal: it
# is hidden in librpctls.so, and its name says so with a double underscore
# after its layer -- krpc__, ktls__, mb__, nfs3__ (rpctls__ for the few that
# belong to no layer). The table below was made from `nm` of the objects:
# every global symbol not in the public headers. Renaming is whole words
# (clnt_enter, not krpc_clnt_enter or clnt_enter_cb), in the tracked text
# files under src/ tools/ tests/ docs/ and README.md; `struct krpc_drc_info`
# keeps its name (only the function krpc_drc_info is renamed). Running it
# twice changes nothing the second time. Afterwards: build, run the tests,
# and --check for internal functions added since the table was made.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# OLD NEW, one pair a line.
table() {
    cat <<'TABLE'
clnt_alloc_xid               krpc__clnt_alloc_xid
clnt_close_progress          krpc__clnt_close_progress
clnt_conn_close_all          krpc__clnt_conn_close_all
clnt_conn_timer_fn           krpc__clnt_conn_timer_fn
clnt_disconnected            krpc__clnt_disconnected
clnt_enter                   krpc__clnt_enter
clnt_fail_all                krpc__clnt_fail_all
clnt_fold_conn_stats         krpc__clnt_fold_conn_stats
clnt_leave                   krpc__clnt_leave
clnt_on_ready                krpc__clnt_on_ready
clnt_on_reply                krpc__clnt_on_reply
clnt_reconnect_fn            krpc__clnt_reconnect_fn
clnt_rekey_reconnect         krpc__clnt_rekey_reconnect
clnt_set_error               krpc__clnt_set_error
clnt_start_connect           krpc__clnt_start_connect
krpc_drc_checksum            krpc__drc_checksum
krpc_drc_complete            krpc__drc_complete
krpc_drc_forget              krpc__drc_forget
krpc_drc_free                krpc__drc_free
krpc_drc_info                krpc__drc_info
krpc_drc_key_set_addr        krpc__drc_key_set_addr
krpc_drc_key_set_cred        krpc__drc_key_set_cred
krpc_drc_lookup              krpc__drc_lookup
krpc_drc_new                 krpc__drc_new
krpc_pmap_encode_mapping     krpc__pmap_encode_mapping
krpc_rpcb_encode_map         krpc__rpcb_encode_map
krpc_svc_deferred            krpc__svc_deferred
krpc_svc_dispatch_msg        krpc__svc_dispatch_msg
krpc_svc_new_detached        krpc__svc_new_detached
ktls_aead_walk               ktls__aead_walk
ktls_conn_set_record_limit   ktls__conn_set_record_limit
ktls_conn_set_seq            ktls__conn_set_seq
ktls_dir_set_secret          ktls__dir_set_secret
ktls_nonce                   ktls__nonce
ktls_tx_control_record       ktls__tx_control_record
ktls_tx_queue_alert          ktls__tx_queue_alert
mb_guard_get                 mb__guard_get
mb_guard_set                 mb__guard_set
nfs3x_get_post_fh            nfs3__xdr_get_post_fh
nfs3x_get_str                nfs3__xdr_get_str
nfs3x_get_time               nfs3__xdr_get_time
nfs3x_post_attr_size         nfs3__xdr_post_attr_size
nfs3x_post_fh_size           nfs3__xdr_post_fh_size
nfs3x_put_post_fh            nfs3__xdr_put_post_fh
nfs3x_put_str                nfs3__xdr_put_str
nfs3x_put_time               nfs3__xdr_put_time
nfsd_be_close                nfs3__be_close
nfsd_be_fh                   nfs3__be_fh
nfsd_be_gen_at               nfs3__be_gen_at
nfsd_be_lookup_path          nfs3__be_lookup_path
nfsd_be_open                 nfs3__be_open
nfsd_be_open_beneath         nfs3__be_open_beneath
nfsd_be_resolve              nfs3__be_resolve
nfsd_be_walks                nfs3__be_walks
nfsd_default_domain          nfs3__default_domain
nfsd_export_for_fh           nfs3__export_for_fh
nfsd_export_for_path         nfs3__export_for_path
nfsd_exports_close           nfs3__exports_close
nfsd_exports_open            nfs3__exports_open
nfsd_fattr                   nfs3__fattr
nfsd_fh_export_id            nfs3__fh_export_id
nfsd_fh_init                 nfs3__fh_init
nfsd_fh_key_load             nfs3__fh_key_load
nfsd_fh_make                 nfs3__fh_make
nfsd_fh_parse                nfs3__fh_parse
nfsd_idctx_init              nfs3__idctx_init
nfsd_ident_enter             nfs3__ident_enter
nfsd_ident_from_cert_user    nfs3__ident_from_cert_user
nfsd_ident_from_cred         nfs3__ident_from_cred
nfsd_ident_leave             nfs3__ident_leave
nfsd_ident_server_begin      nfs3__ident_server_begin
nfsd_ident_server_end        nfs3__ident_server_end
nfsd_ident_squash            nfs3__ident_squash
nfsd_map_add                 nfs3__map_add
nfsd_map_clear               nfs3__map_clear
nfsd_map_del                 nfs3__map_del
nfsd_map_gone                nfs3__map_gone
nfsd_name_ok                 nfs3__name_ok
nfsd_obj_close               nfs3__obj_close
nfsd_obj_reopen              nfs3__obj_reopen
nfsd_op_access               nfs3__op_access
nfsd_op_commit               nfs3__op_commit
nfsd_op_create               nfs3__op_create
nfsd_op_link                 nfs3__op_link
nfsd_op_lookup               nfs3__op_lookup
nfsd_op_mkdir                nfs3__op_mkdir
nfsd_op_mknod                nfs3__op_mknod
nfsd_op_read                 nfs3__op_read
nfsd_op_readdir              nfs3__op_readdir
nfsd_op_readlink             nfs3__op_readlink
nfsd_op_remove               nfs3__op_remove
nfsd_op_rename               nfs3__op_rename
nfsd_op_setattr              nfs3__op_setattr
nfsd_op_symlink              nfs3__op_symlink
nfsd_op_write                nfs3__op_write
nfsd_pool_free               nfs3__pool_free
nfsd_pool_new                nfs3__pool_new
nfsd_pool_shutdown           nfs3__pool_shutdown
nfsd_pool_sleep_ms           nfs3__pool_sleep_ms
nfsd_pool_submit             nfs3__pool_submit
nfsd_post_attr_fd            nfs3__post_attr_fd
nfsd_pre_attr                nfs3__pre_attr
TABLE
}

case ${1:-} in
--list)
    table
    exit 0
    ;;
--check)
    dir=${2:?usage: scripts/rename-internal.sh --check BUILD_DIR}
    [ -f "$dir/librpctls.a" ] || { echo "rename-internal: no $dir/librpctls.a (build first)" >&2; exit 2; }
    bad=$(nm -g --defined-only "$dir/librpctls.a" | awk 'NF == 3 {print $3}' | sort -u |
        comm -23 - <(grep -v -e '^#' -e '^[[:space:]]*$' tests/exported_symbols.txt | sort -u) |
        grep -v -E '^(krpc|ktls|mb|nfs3|rpctls)__' | grep -v -E '^__(odr_asan|asan|ubsan|sanitizer|sancov)' || true)
    if [ -n "$bad" ]; then
        echo "rename-internal: internal symbols without a layer__ name (add them to the table, or declare them RPCTLS_API):" >&2
        echo "$bad" | sed 's/^/  /' >&2
        exit 1
    fi
    echo "rename-internal: every internal symbol of $dir/librpctls.a has a layer__ name"
    exit 0
    ;;
"") ;;
*)
    sed -n '4,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac

# The renaming, in perl: each whole-word old name, not after "struct ",
# "enum " or "union " (a tag that shares a function's name keeps it). A line
# that leaves a parenthesis open (a declaration or call continued on the next
# lines) and whose open parenthesis moved: the continuation lines aligned
# under it move with it.
# RENAME_MODE=list prints FILE:LINE: TEXT for every line still to rename;
# RENAME_MODE=apply renames in place.
perl_rename='
    BEGIN {
        for (split /\n/, $ENV{RENAME_TABLE}) { my ($o, $n) = split; $map{$o} = $n; }
        my $alt = join "|", sort { length($b) <=> length($a) } keys %map;
        $re = qr/(?<!struct )(?<!enum )(?<!union )\b($alt)\b/;
        $list = $ENV{RENAME_MODE} eq "list";
    }
    # For one line: the parentheses it leaves open, the column of the
    # outermost of them (-1 when none), and opened minus closed (a
    # continuation line may close what an earlier line opened). String and
    # character literals are blanked first: their parentheses do not count.
    sub parens {
        my ($t) = @_;
        $t =~ s/"(?:\\.|[^"\\])*"/"\x01" x length($&)/ge;
        $t =~ s/\x27(?:\\.|[^\x27\\])*\x27/"\x01" x length($&)/ge;
        my ($net, @cols) = (0);
        for my $i (0 .. length($t) - 1) {
            my $c = substr($t, $i, 1);
            if ($c eq "(") { push @cols, $i; $net++; }
            elsif ($c eq ")") { pop @cols; $net--; }
        }
        return (scalar @cols, @cols ? $cols[0] : -1, $net);
    }
    if ($list) { print "$ARGV:$.: $_" if /$re/; close ARGV if eof; next; }
    my $orig = $_;
    s/$re/$map{$1}/g;
    if ($depth > 0) {
        # A continuation line of a renamed line above, until the parenthesis
        # closes.
        s/^ {$old_ind}(?=\S)/" " x $new_ind/e;
        $depth += (parens($_))[2];
        $depth = 0 if $depth < 0;
    }
    if ($_ ne $orig) {
        my ($d0, $c0) = parens($orig);
        my ($d1, $c1) = parens($_);
        if ($d0 > 0 && $d1 == $d0 && $c0 != $c1) {
            ($depth, $old_ind, $new_ind) = ($d1, $c0 + 1, $c1 + 1);
        }
    }
    $depth = 0 if eof;
'
RENAME_TABLE=$(table)
export RENAME_TABLE

# Tracked text files that mention any old name at all (-I: no binary files).
alternation=$(table | awk '{print $1}' | paste -sd'|')
mapfile -t candidates < <(git grep -I -l -w -E "$alternation" -- src tools tests docs README.md || true)
pending() { [ ${#candidates[@]} -eq 0 ] || RENAME_MODE=list perl -n -e "$perl_rename" "${candidates[@]}"; }

mapfile -t files < <(pending | cut -d: -f1 | uniq)
if [ ${#files[@]} -eq 0 ]; then
    echo "rename-internal: nothing to rename"
    exit 0
fi
RENAME_MODE=apply perl -pi -e "$perl_rename" "${files[@]}"
echo "rename-internal: renamed in ${#files[@]} files:"
printf '  %s\n' "${files[@]}"

left=$(pending)
if [ -n "$left" ]; then
    echo "rename-internal: old names still present:" >&2
    echo "$left" >&2
    exit 1
fi
